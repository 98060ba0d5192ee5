//! UIDs for what vmunet writes: `2.25.<128-bit number>` (PS3.5 B.2, no registered root
//! needed), derived from what the object is made of, so that segmenting the same series with
//! the same model again gives the same UIDs (a PACS then replaces, not duplicates, the result).

use sha2::{Digest, Sha256};

/// The UID of `parts` joined (e.g. model hash, source series UID, role).
pub fn derived(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut n = [0u8; 16];
    n.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(n))
}

#[cfg(test)]
mod tests {
    #[test]
    fn uids_are_valid_and_stable() {
        let a = super::derived(&["m", "1.2.3", "series"]);
        assert_eq!(a, super::derived(&["m", "1.2.3", "series"]));
        assert_ne!(a, super::derived(&["m", "1.2.3", "instance"]));
        assert!(a.len() <= 64 && a.starts_with("2.25."));
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()) && !a[5..].starts_with('0'));
    }
}
