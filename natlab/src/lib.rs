//! The NAT lab (being built).
