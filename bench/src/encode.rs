//! Percent-encoding of URL query values and path segments (RFC 3986).

/// Percent-encodes every byte but the unreserved characters, so the result is
/// safe both as a query value and as a path segment.
pub fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len() + value.len() / 2);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn encodes_a_scim_filter() {
        assert_eq!(
            percent_encode(r#"userName eq "user7@bench.example""#),
            "userName%20eq%20%22user7%40bench.example%22"
        );
    }

    #[test]
    fn keeps_unreserved_characters() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("é/+"), "%C3%A9%2F%2B");
    }
}
