//! A fuzzer-style test that runs without nightly: mutate valid messages and
//! decode them. `sdk/fuzz` has the libFuzzer target for longer runs.

use super::tests::{
    SHORT_TERM_PASSWORD, sample_ipv4_response, sample_ipv6_response, sample_long_term_request,
    sample_request,
};
use super::*;

/// A tiny deterministic PRNG (xorshift64*) so the mutation test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates valid messages (bit flips, byte sets, truncation, growth, length-field
/// edits) and decodes them, as a fuzzer would; none may panic.
#[test]
fn decoding_mutated_messages_never_panics() {
    let seeds = [
        sample_request(),
        sample_ipv4_response(),
        sample_ipv6_response(),
        sample_long_term_request(),
    ];
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let key = IntegrityKey::short_term(SHORT_TERM_PASSWORD);
    let mut decoded = 0usize;
    for round in 0..200_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            let len = bytes.len();
            match rng.below(6) {
                0 | 1 if len == 0 => {}
                0 => {
                    let i = rng.below(len);
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(len);
                    bytes[i] = rng.next() as u8;
                }
                2 => bytes.truncate(rng.below(len + 1)),
                3 => bytes.extend((0..rng.below(12)).map(|_| rng.next() as u8)),
                4 if len >= 4 => {
                    // Make the header length match the new size, so the attribute
                    // walker (not the header check) meets the damage.
                    let body = (len.saturating_sub(20) as u16).to_be_bytes();
                    bytes[2] = body[0];
                    bytes[3] = body[1];
                }
                _ => {
                    // Corrupt an attribute length field somewhere past the header.
                    if len > 24 {
                        let i = 20 + rng.below(len - 21);
                        bytes[i] = rng.next() as u8;
                    }
                }
            }
        }
        if let Ok(m) = Message::decode(&bytes) {
            decoded += 1;
            let _ = m.verify_integrity(&key);
            let _ = m.verify_integrity_sha256(&key);
            let _ = m.verify_fingerprint();
        }
        let _ = ChannelData::decode(&bytes);
    }
    // Some mutants stay valid (e.g. flips inside values); the walk must reach them.
    assert!(decoded > 1000, "only {decoded} mutants decoded");
}
