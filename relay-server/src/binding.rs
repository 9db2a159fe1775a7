//! The Binding method (RFC 8489 §7.3.1) with the RFC 5780 extensions:
//! CHANGE-REQUEST, RESPONSE-PORT, PADDING, RESPONSE-ORIGIN and OTHER-ADDRESS.

use std::net::SocketAddr;

use tsunagi::stun::{Attribute, AttributeType, Class, ErrorCode, Message, MessageBuilder};

use crate::server::{ServerConfig, Transmit, add_software, error_response};

/// The largest response we send: one 1500-byte IPv6 packet (40 + 8 header bytes).
/// PADDING is cut to fit.
pub(crate) const MAX_RESPONSE: usize = 1452;
/// UNKNOWN-ATTRIBUTES lists at most this many types (the rest add nothing).
const MAX_UNKNOWN_LISTED: usize = 16;

/// Answers one Binding request.
pub(crate) fn handle(
    config: &ServerConfig,
    local: SocketAddr,
    from: SocketAddr,
    request: &Message<'_>,
    out: &mut Vec<Transmit>,
) {
    // RFC 5780 applies only to requests that reached one of its four sockets.
    let rfc5780 = config.rfc5780.filter(|a| a.contains(local));

    let mut change = (false, false);
    let mut response_port = None;
    let mut padding = None;
    for attribute in request.attributes() {
        match attribute {
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            } => change = (*change_ip, *change_port),
            Attribute::ResponsePort(port) => response_port = Some(*port),
            Attribute::Padding(bytes) => padding = Some(bytes.len()),
            _ => {}
        }
    }

    let mut unknown: Vec<AttributeType> = Vec::new();
    for &t in request.unknown_comprehension_required() {
        if !unknown.contains(&t) && unknown.len() < MAX_UNKNOWN_LISTED {
            unknown.push(t);
        }
    }
    // Without a second address a change cannot be honoured: answer as a plain
    // RFC 8489 server would (420), so the client learns RFC 5780 is unavailable.
    if rfc5780.is_none() && (change.0 || change.1) {
        unknown.push(AttributeType::CHANGE_REQUEST);
    }
    if !unknown.is_empty() {
        let error = ErrorCode::UNKNOWN_ATTRIBUTE;
        out.push(error_response(
            config, local, from, request, error, &unknown,
        ));
        return;
    }
    // RFC 5780 §6.1: PADDING with RESPONSE-PORT is refused, so a client cannot
    // aim large responses at another port.
    if padding.is_some() && response_port.is_some() {
        let error = ErrorCode::new(400, "PADDING with RESPONSE-PORT");
        out.push(error_response(config, local, from, request, error, &[]));
        return;
    }
    if response_port == Some(0) {
        let error = ErrorCode::new(400, "RESPONSE-PORT 0");
        out.push(error_response(config, local, from, request, error, &[]));
        return;
    }

    let source = match rfc5780 {
        Some(addresses) => addresses
            .changed(local, change.0, change.1)
            .unwrap_or(local),
        None => local,
    };
    let destination = match response_port {
        Some(port) => SocketAddr::new(from.ip(), port),
        None => from,
    };

    let mut response = MessageBuilder::new(
        Class::SuccessResponse,
        request.method(),
        request.transaction_id(),
    );
    // Addresses always fit; the results are ignored only because they cannot fail.
    let _ = response.add(&Attribute::XorMappedAddress(from));
    if let Some(addresses) = rfc5780 {
        let _ = response.add(&Attribute::ResponseOrigin(source));
        if let Some(other) = addresses.other(local) {
            let _ = response.add(&Attribute::OtherAddress(other));
        }
    }
    add_software(config, &mut response);
    if let Some(requested) = padding {
        // Mirror the request's padding (never more), so padding cannot amplify,
        // and keep the response within one packet.
        let trailer = if request.has_fingerprint() { 8 } else { 0 };
        let room = MAX_RESPONSE.saturating_sub(response.len() + 4 + trailer);
        let len = requested.next_multiple_of(4).min(room / 4 * 4);
        let zeros = vec![0u8; len];
        let _ = response.add(&Attribute::Padding(&zeros));
    }
    let payload = if request.has_fingerprint() {
        response.finish_with_fingerprint()
    } else {
        response.finish()
    };
    tracing::debug!(%from, %local, %source, %destination, "binding response");
    out.push(Transmit {
        local: source,
        destination,
        payload,
    });
}
