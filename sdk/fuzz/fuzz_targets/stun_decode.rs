//! Feeds arbitrary datagrams to the STUN and ChannelData decoders and the
//! integrity checks; any panic is a bug. Run: `cargo +nightly fuzz run stun_decode`
//! from `sdk/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagi::stun::{ChannelData, IntegrityKey, Message, MessageBuilder, classify};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = ChannelData::decode(data);
    if let Ok(message) = Message::decode(data) {
        let key = IntegrityKey::short_term("fuzz");
        let _ = message.verify_integrity(&key);
        let _ = message.verify_integrity_sha256(&key);
        let _ = message.verify_fingerprint();
        // Re-encoding what was decoded must work and decode to the same attributes.
        let mut builder =
            MessageBuilder::new(message.class(), message.method(), message.transaction_id());
        let mut all_added = true;
        for attribute in message.attributes() {
            all_added &= builder.add(attribute).is_ok();
        }
        if all_added {
            let bytes = builder.finish();
            if let Ok(again) = Message::decode(&bytes) {
                assert_eq!(again.attributes().len(), message.attributes().len());
            }
        }
    }
});
