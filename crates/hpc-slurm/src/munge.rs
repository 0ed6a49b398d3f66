//! The munge key: random bytes the caller generates, checked here.

/// munged refuses shorter keys (`Keyfile must be at least 32 bytes`).
pub const MUNGE_KEY_MIN_LEN: usize = 32;
/// Where the key goes on every node.
pub const MUNGE_KEY_PATH: &str = "/etc/munge/munge.key";
/// Mode of the key (munged refuses one readable by group or others).
pub const MUNGE_KEY_MODE: u32 = 0o400;
/// Owner (user and group) of the key, by name: the UID differs per machine.
pub const MUNGE_KEY_OWNER: &str = "munge";

/// Random bytes that do not make a munge key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MungeKeyError {
    /// Too short.
    #[error("a munge key needs at least {MUNGE_KEY_MIN_LEN} bytes, got {len}")]
    TooShort {
        /// The length given.
        len: usize,
    },
    /// Every byte is the same: not random.
    #[error("the munge key bytes are all the same; they are not random")]
    NotRandom,
}

/// Check `random` (from the caller's CSPRNG) and return it as the key file's content.
pub fn munge_key(random: &[u8]) -> Result<Vec<u8>, MungeKeyError> {
    if random.len() < MUNGE_KEY_MIN_LEN {
        return Err(MungeKeyError::TooShort { len: random.len() });
    }
    if random.iter().all(|b| *b == random[0]) {
        return Err(MungeKeyError::NotRandom);
    }
    Ok(random.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_length_and_randomness() {
        assert_eq!(
            munge_key(&[1; 31]),
            Err(MungeKeyError::TooShort { len: 31 })
        );
        assert_eq!(munge_key(&[0; 1024]), Err(MungeKeyError::NotRandom));
        let key: Vec<u8> = (0..=255).collect();
        assert_eq!(munge_key(&key), Ok(key.clone()));
    }
}
