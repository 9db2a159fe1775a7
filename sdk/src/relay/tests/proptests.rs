//! `handle_input` never panics, whatever arrives and whenever.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// A client in each phase: allocating, allocated with a channel, releasing, closed.
fn clients() -> Vec<Net> {
    let allocating = Net::new(config("secret"));
    let mut allocated = Net::new(config("secret"));
    allocated.allocate();
    let peer = addr("203.0.113.5:40000");
    allocated.client.bind_channel(allocated.now, peer).unwrap();
    allocated.client.send_to(allocated.now, peer, b"x").unwrap();
    allocated.pump();
    let mut releasing = Net::new(config("secret"));
    releasing.allocate();
    releasing.client.release(releasing.now);
    let mut closed = Net::new(config("wrong"));
    closed.pump();
    vec![allocating, allocated, releasing, closed]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(datagram in vec(any::<u8>(), 0..200)) {
        for mut net in clients() {
            net.client.handle_input(net.now, addr(SERVER), &datagram);
            net.client.handle_timeout(net.now);
            while net.client.poll_event().is_some() {}
            while net.client.poll_transmit().is_some() {}
        }
    }

    /// Mutations of the server's real answers reach deeper than random bytes.
    #[test]
    fn mutated_answers_never_panic(
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut net = Net::new(config("secret"));
        let first = net.client.poll_transmit().unwrap();
        let mut answers = net.server.handle(addr(CLIENT), &first.bytes);
        for answer in answers.clone() {
            net.client.handle_input(net.now, addr(SERVER), &answer);
        }
        let second = net.client.poll_transmit().unwrap();
        answers.extend(net.server.handle(addr(CLIENT), &second.bytes));
        for mut answer in answers {
            for (at, value) in &flips {
                let i = at.index(answer.len());
                answer[i] ^= value;
            }
            if truncate {
                answer.truncate(cut.index(answer.len() + 1));
            }
            net.client.handle_input(net.now, addr(SERVER), &answer);
        }
        net.client.handle_timeout(net.now);
        while net.client.poll_event().is_some() {}
    }
}
