//! [`Fingerprint`]: the SHA-256 hash of a certificate, the name of a TLS identity.
//!
//! It is written as 64 lowercase hexadecimal digits; parsing also accepts upper case and the
//! `aa:bb:...` form that `openssl x509 -fingerprint -sha256` prints.

use std::fmt;
use std::str::FromStr;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

/// The SHA-256 fingerprint of a certificate (its DER bytes): what pins a server, and how a
/// client certificate is named.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given in DER.
    pub fn of_certificate(der: &[u8]) -> Fingerprint {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, der).as_ref());
        Fingerprint(bytes)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// Parses 64 hexadecimal digits, optionally in pairs separated by `:`.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(format!(
                "a fingerprint is 64 hexadecimal digits (a SHA-256 hash), not {}",
                digits.len()
            ));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let high = hex_value(pair[0]);
            let low = hex_value(pair[1]);
            match (high, low) {
                (Some(h), Some(l)) => *byte = h << 4 | l,
                _ => {
                    return Err(format!(
                        "a fingerprint has only hexadecimal digits (0-9, a-f); found {:?}",
                        String::from_utf8_lossy(pair)
                    ));
                }
            }
        }
        Ok(Fingerprint(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_prints_and_parses_back() {
        let fp = Fingerprint::of_certificate(b"not really a certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(text.to_uppercase().parse::<Fingerprint>().unwrap(), fp);
        let colons: Vec<String> = fp.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn bad_text_says_what_is_wrong() {
        assert!(
            "abc"
                .parse::<Fingerprint>()
                .unwrap_err()
                .contains("64 hexadecimal")
        );
        let bad = "g".repeat(64);
        assert!(
            bad.parse::<Fingerprint>()
                .unwrap_err()
                .contains("only hexadecimal")
        );
    }
}
