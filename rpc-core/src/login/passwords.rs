//! [`Passwords`]: user names and the argon2 hashes of their passwords.
//!
//! A password is never stored nor compared in clear: [`Passwords::hash`] makes an argon2id
//! hash in the PHC string format (`$argon2id$v=19$m=...$<salt>$<hash>`, salt random per
//! hash), and a check recomputes it. Checking a user that does not exist costs the same as
//! checking one that does (a dummy hash is verified), so timing does not tell them apart.
//! Hashing is slow on purpose (tens of milliseconds and 19 MiB each): checks run on tokio's
//! blocking pool, at most one per CPU at a time in the whole process, so that a flood of
//! logins queues instead of taking hundreds of threads and gigabytes of memory.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::CallError;

/// User names with their password hashes. Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct Passwords {
    hashes: Arc<RwLock<HashMap<String, String>>>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users = self.hashes.read().map(|h| h.len()).unwrap_or(0);
        f.debug_struct("Passwords").field("users", &users).finish()
    }
}

fn bad_hash(user: &str, e: impl std::fmt::Display) -> CallError {
    CallError::Encode {
        what: "a password hash",
        message: format!("the password hash of {user:?} is not an argon2 PHC string: {e}"),
    }
}

impl Passwords {
    /// An empty table.
    pub fn new() -> Passwords {
        Passwords::default()
    }

    /// Prepares the hash checked for unknown users, so that the first one does not take
    /// longer than the others.
    pub(crate) fn prepare() {
        dummy_hash();
    }

    /// The argon2id hash of `password` with a new random salt, as a PHC string: what to
    /// store instead of the password.
    pub fn hash(password: &str) -> Result<String, CallError> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| CallError::Encode {
                what: "a password hash",
                message: e.to_string(),
            })
    }

    /// Adds (or replaces) `user` with the hash of `password`.
    pub fn add(&self, user: &str, password: &str) -> Result<(), CallError> {
        let hash = Passwords::hash(password)?;
        self.add_hash(user, &hash)
    }

    /// Adds (or replaces) `user` with a stored hash (from [`Passwords::hash`]: argon2id with
    /// the default parameters, so that checking any user takes as long as checking one that
    /// does not exist).
    pub fn add_hash(&self, user: &str, hash: &str) -> Result<(), CallError> {
        let parsed = PasswordHash::new(hash).map_err(|e| bad_hash(user, e))?;
        let params = argon2::Params::try_from(&parsed).map_err(|e| bad_hash(user, e))?;
        let default = argon2::Params::default();
        let same_cost = (params.m_cost(), params.t_cost(), params.p_cost())
            == (default.m_cost(), default.t_cost(), default.p_cost());
        if parsed.algorithm != argon2::Algorithm::Argon2id.ident() || !same_cost {
            return Err(bad_hash(
                user,
                "it is not argon2id with the default cost (make it with Passwords::hash)",
            ));
        }
        let mut hashes = self.hashes.write().unwrap_or_else(|e| e.into_inner());
        hashes.insert(user.to_owned(), hash.to_owned());
        Ok(())
    }

    /// Whether `user` is in the table.
    pub fn contains(&self, user: &str) -> bool {
        let hashes = self.hashes.read().unwrap_or_else(|e| e.into_inner());
        hashes.contains_key(user)
    }

    /// Whether `password` is `user`'s, checked on the blocking pool. An unknown user takes
    /// as long as a wrong password.
    pub async fn check(&self, user: &str, password: &str) -> bool {
        let stored = {
            let hashes = self.hashes.read().unwrap_or_else(|e| e.into_inner());
            hashes.get(user).cloned()
        };
        let password = password.to_owned();
        let Ok(permit) = Arc::clone(checks()).acquire_owned().await else {
            return false;
        };
        // The permit goes with the work: a login cancelled while its hash is computed does
        // not let another one start before it is done.
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match stored {
                Some(hash) => verify(&hash, &password),
                None => {
                    // The same work as for a real user, and then no.
                    verify(dummy_hash(), &password);
                    false
                }
            }
        });
        checked.await.unwrap_or(false)
    }
}

/// The permits for password checks running at once: one per CPU.
fn checks() -> &'static Arc<tokio::sync::Semaphore> {
    static CHECKS: OnceLock<Arc<tokio::sync::Semaphore>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(cpus))
    })
}

fn verify(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, made once, verified for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_right_password_passes() {
        let passwords = Passwords::new();
        passwords.add("ann", "correct horse").unwrap();
        assert!(passwords.contains("ann"));
        assert!(passwords.check("ann", "correct horse").await);
        assert!(!passwords.check("ann", "correct horsE").await);
        assert!(!passwords.check("bob", "correct horse").await);
        assert!(!passwords.check("ann", "").await);
    }

    #[test]
    fn hashes_are_salted_argon2id_and_never_the_password() {
        let a = Passwords::hash("secret").unwrap();
        let b = Passwords::hash("secret").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a random salt per hash");
        assert!(!a.contains("secret"));
        assert!(Passwords::new().add_hash("x", "not a hash").is_err());
        let cheap =
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$l5Rp0WoMR5lTn2ZGf8WLxRBOxWPcl9PAOFg6v0BDjlE";
        let e = Passwords::new()
            .add_hash("x", cheap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default cost"), "{e}");
        Passwords::new().add_hash("x", &a).unwrap();
    }
}
