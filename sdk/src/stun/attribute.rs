//! Attribute types and values (RFC 8489 §14, RFC 5780 §7, RFC 8656 §18,
//! RFC 8445 §16.1). Parsing and writing live in `attribute_codec.rs`.

use std::fmt;
use std::net::SocketAddr;

use super::address::AddressFamily;

/// A 16-bit attribute type. Constants name every attribute this codec knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

macro_rules! attribute_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl AttributeType {
            $($(#[$doc])* pub const $name: AttributeType = AttributeType($value);)*

            /// The RFC name of a known attribute type.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(AttributeType::$name => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

attribute_types! {
    /// MAPPED-ADDRESS (RFC 8489).
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    /// CHANGE-REQUEST (RFC 5780).
    CHANGE_REQUEST = 0x0003, "CHANGE-REQUEST";
    /// USERNAME (RFC 8489).
    USERNAME = 0x0006, "USERNAME";
    /// MESSAGE-INTEGRITY (RFC 8489).
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    /// ERROR-CODE (RFC 8489).
    ERROR_CODE = 0x0009, "ERROR-CODE";
    /// UNKNOWN-ATTRIBUTES (RFC 8489).
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    /// CHANNEL-NUMBER (RFC 8656).
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    /// LIFETIME (RFC 8656).
    LIFETIME = 0x000D, "LIFETIME";
    /// XOR-PEER-ADDRESS (RFC 8656).
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    /// DATA (RFC 8656).
    DATA = 0x0013, "DATA";
    /// REALM (RFC 8489).
    REALM = 0x0014, "REALM";
    /// NONCE (RFC 8489).
    NONCE = 0x0015, "NONCE";
    /// XOR-RELAYED-ADDRESS (RFC 8656).
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656).
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    /// EVEN-PORT (RFC 8656).
    EVEN_PORT = 0x0018, "EVEN-PORT";
    /// REQUESTED-TRANSPORT (RFC 8656).
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    /// DONT-FRAGMENT (RFC 8656).
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489).
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    /// PASSWORD-ALGORITHM (RFC 8489).
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    /// USERHASH (RFC 8489).
    USERHASH = 0x001E, "USERHASH";
    /// XOR-MAPPED-ADDRESS (RFC 8489).
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    /// RESERVATION-TOKEN (RFC 8656).
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    /// PRIORITY (RFC 8445).
    PRIORITY = 0x0024, "PRIORITY";
    /// USE-CANDIDATE (RFC 8445).
    USE_CANDIDATE = 0x0025, "USE-CANDIDATE";
    /// PADDING (RFC 5780).
    PADDING = 0x0026, "PADDING";
    /// RESPONSE-PORT (RFC 5780).
    RESPONSE_PORT = 0x0027, "RESPONSE-PORT";
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656).
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    /// ADDRESS-ERROR-CODE (RFC 8656).
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    /// PASSWORD-ALGORITHMS (RFC 8489).
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    /// ALTERNATE-DOMAIN (RFC 8489).
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    /// ICMP (RFC 8656).
    ICMP = 0x8004, "ICMP";
    /// SOFTWARE (RFC 8489).
    SOFTWARE = 0x8022, "SOFTWARE";
    /// ALTERNATE-SERVER (RFC 8489).
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    /// FINGERPRINT (RFC 8489).
    FINGERPRINT = 0x8028, "FINGERPRINT";
    /// ICE-CONTROLLED (RFC 8445).
    ICE_CONTROLLED = 0x8029, "ICE-CONTROLLED";
    /// ICE-CONTROLLING (RFC 8445).
    ICE_CONTROLLING = 0x802A, "ICE-CONTROLLING";
    /// RESPONSE-ORIGIN (RFC 5780).
    RESPONSE_ORIGIN = 0x802B, "RESPONSE-ORIGIN";
    /// OTHER-ADDRESS (RFC 5780).
    OTHER_ADDRESS = 0x802C, "OTHER-ADDRESS";
}

impl AttributeType {
    /// Types below 0x8000 must be understood; an agent that does not know one
    /// rejects the request with 420 (RFC 8489 §14).
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "AttributeType({:#06x})", self.0),
        }
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// ERROR-CODE's value: a code in 300..=699 and a reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode<'a> {
    /// The code, e.g. 401 or 420.
    pub code: u16,
    /// A human-readable reason (UTF-8, at most 763 bytes).
    pub reason: &'a str,
}

impl ErrorCode<'static> {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: ErrorCode<'static> = ErrorCode::new(300, "Try Alternate");
    /// 400 Bad Request.
    pub const BAD_REQUEST: ErrorCode<'static> = ErrorCode::new(400, "Bad Request");
    /// 401 Unauthenticated.
    pub const UNAUTHENTICATED: ErrorCode<'static> = ErrorCode::new(401, "Unauthenticated");
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: ErrorCode<'static> = ErrorCode::new(420, "Unknown Attribute");
    /// 438 Stale Nonce.
    pub const STALE_NONCE: ErrorCode<'static> = ErrorCode::new(438, "Stale Nonce");
    /// 500 Server Error.
    pub const SERVER_ERROR: ErrorCode<'static> = ErrorCode::new(500, "Server Error");
}

impl<'a> ErrorCode<'a> {
    /// An error code with a reason phrase.
    pub const fn new(code: u16, reason: &'a str) -> ErrorCode<'a> {
        ErrorCode { code, reason }
    }
}

/// One entry of PASSWORD-ALGORITHM(S): an algorithm number and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithm<'a> {
    /// 0x0001 MD5, 0x0002 SHA-256 (RFC 8489 §18.5).
    pub algorithm: u16,
    /// Algorithm parameters (empty for MD5 and SHA-256).
    pub parameters: &'a [u8],
}

impl PasswordAlgorithm<'static> {
    /// MD5, the RFC 5389 long-term key.
    pub const MD5: PasswordAlgorithm<'static> = PasswordAlgorithm {
        algorithm: 0x0001,
        parameters: &[],
    };
    /// SHA-256.
    pub const SHA256: PasswordAlgorithm<'static> = PasswordAlgorithm {
        algorithm: 0x0002,
        parameters: &[],
    };
}

/// A decoded attribute. Values borrow from the message where they are byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS: the reflexive address, unobfuscated (RFC 3489 clients).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: the reflexive transport address.
    XorMappedAddress(SocketAddr),
    /// USERNAME (UTF-8, < 513 bytes).
    Username(&'a str),
    /// USERHASH: SHA-256 of `username:realm` (see [`super::userhash`]).
    Userhash(&'a [u8; 32]),
    /// REALM (UTF-8, < 763 bytes).
    Realm(&'a str),
    /// NONCE (< 763 bytes).
    Nonce(&'a str),
    /// PASSWORD-ALGORITHM: the algorithm the client chose.
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    /// PASSWORD-ALGORITHMS: the algorithms the server offers.
    PasswordAlgorithms(Vec<PasswordAlgorithm<'a>>),
    /// MESSAGE-INTEGRITY: HMAC-SHA1, as found in the message.
    MessageIntegrity(&'a [u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256: HMAC-SHA256, possibly truncated (16..=32 bytes).
    MessageIntegritySha256(&'a [u8]),
    /// FINGERPRINT: CRC-32 of the message XOR 0x5354554e, as found.
    Fingerprint(u32),
    /// ERROR-CODE.
    ErrorCode(ErrorCode<'a>),
    /// UNKNOWN-ATTRIBUTES: the types a 420 response did not understand.
    UnknownAttributes(Vec<AttributeType>),
    /// SOFTWARE (< 763 bytes).
    Software(&'a str),
    /// ALTERNATE-SERVER.
    AlternateServer(SocketAddr),
    /// ALTERNATE-DOMAIN (for TLS certificate checks after a 300).
    AlternateDomain(&'a str),
    /// CHANGE-REQUEST: ask the server to answer from another IP and/or port.
    ChangeRequest {
        /// The "A" flag: answer from the other IP address.
        change_ip: bool,
        /// The "B" flag: answer from the other port.
        change_port: bool,
    },
    /// RESPONSE-ORIGIN: the address the response was sent from.
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS: the server's alternate IP and port.
    OtherAddress(SocketAddr),
    /// RESPONSE-PORT: send the response to this port of the client's address.
    ResponsePort(u16),
    /// PADDING: bytes to make the response larger (MTU discovery).
    Padding(&'a [u8]),
    /// CHANNEL-NUMBER (0x4000..=0x4FFF).
    ChannelNumber(u16),
    /// LIFETIME in seconds.
    Lifetime(u32),
    /// XOR-PEER-ADDRESS.
    XorPeerAddress(SocketAddr),
    /// DATA.
    Data(&'a [u8]),
    /// XOR-RELAYED-ADDRESS.
    XorRelayedAddress(SocketAddr),
    /// REQUESTED-ADDRESS-FAMILY.
    RequestedAddressFamily(AddressFamily),
    /// EVEN-PORT; `reserve_next` is the R flag (also reserve port + 1).
    EvenPort {
        /// The R flag.
        reserve_next: bool,
    },
    /// REQUESTED-TRANSPORT: an IP protocol number (17 for UDP).
    RequestedTransport(u8),
    /// DONT-FRAGMENT.
    DontFragment,
    /// RESERVATION-TOKEN.
    ReservationToken(&'a [u8; 8]),
    /// ADDITIONAL-ADDRESS-FAMILY (only IPv6 is valid in requests).
    AdditionalAddressFamily(AddressFamily),
    /// ADDRESS-ERROR-CODE: why one family of a dual allocation failed.
    AddressErrorCode {
        /// The family that failed.
        family: AddressFamily,
        /// The error.
        error: ErrorCode<'a>,
    },
    /// ICMP: an ICMP error the relay received for the peer.
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// Error data (the next-hop MTU for "packet too big").
        data: u32,
    },
    /// PRIORITY (ICE).
    Priority(u32),
    /// USE-CANDIDATE (ICE).
    UseCandidate,
    /// ICE-CONTROLLED with its tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING with its tie-breaker.
    IceControlling(u64),
    /// An attribute this codec does not know, kept as raw bytes.
    Unknown {
        /// Its type.
        typ: AttributeType,
        /// Its value, without padding.
        value: &'a [u8],
    },
}
