//! [`DataDir`]: what a broker keeps between runs (`broker-server --data DIR`).
//!
//! - its TLS identity (`tls-certificate.pem`, `tls-key.pem`), generated the first time, so
//!   that its fingerprint, and with it its `pbrs://` URL, stays the same;
//! - `url-secret`, the secret of its URL, also made once;
//! - `users`: one line per user, `<name> <role> <argon2 hash>` (never a password).
//!
//! The directory and its secret files are readable by their owner only. A file that does not
//! parse stops the broker with a message naming the file and line: nothing is regenerated
//! silently.

use std::path::{Path, PathBuf};

use rpc_core::SturdyUrl;
use rpc_core::login::Passwords;
use rpc_core::tls::Identity;

use crate::access::{Users, check_user_name};
use crate::files::{replace_private, write_private};
use crate::role::Role;

/// The users file.
pub const USERS_FILE: &str = "users";
/// The URL secret file.
pub const URL_SECRET_FILE: &str = "url-secret";

/// A broker's data directory. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens `path`, creating it (readable by its owner only) if it does not exist.
    pub fn open(path: impl Into<PathBuf>) -> Result<DataDir, String> {
        let path = path.into();
        if !path.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(&path).map_err(|e| {
                format!(
                    "could not create the data directory {}: {e}",
                    path.display()
                )
            })?;
        } else if !path.is_dir() {
            return Err(format!("{} is not a directory", path.display()));
        }
        Ok(DataDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The broker's TLS identity, generated the first time.
    pub fn identity(&self) -> Result<Identity, String> {
        Identity::load_or_generate(&self.path, &["localhost"]).map_err(|e| e.to_string())
    }

    /// The secret of the broker's URL, made the first time.
    pub fn url_secret(&self) -> Result<String, String> {
        let path = self.path.join(URL_SECRET_FILE);
        if path.exists() {
            let secret = std::fs::read_to_string(&path)
                .map_err(|e| format!("could not read {}: {e}", path.display()))?;
            let secret = secret.trim();
            if let Err(problem) = SturdyUrl::check_secret(secret) {
                return Err(format!(
                    "{} does not hold a URL secret ({problem}); remove it to make a new one \
                     (the broker's URL then changes)",
                    path.display()
                ));
            }
            return Ok(secret.to_owned());
        }
        let secret = SturdyUrl::new_secret().map_err(|e| e.to_string())?;
        write_private(&path, format!("{secret}\n").as_bytes())?;
        Ok(secret)
    }

    /// The users, from the users file (none if it does not exist yet).
    pub fn users(&self) -> Result<Users, String> {
        let users = Users::new();
        for (name, role, hash) in self.user_lines()? {
            users
                .add_hashed(&name, role, &hash)
                .map_err(|e| format!("{}: {e}", self.users_path().display()))?;
        }
        Ok(users)
    }

    /// Adds `name` with `role` and a new random password (replacing any user of that name),
    /// and returns the password: the only time it is ever shown.
    pub fn add_user(&self, name: &str, role: Role) -> Result<String, String> {
        check_user_name(name)?;
        let password = SturdyUrl::new_secret().map_err(|e| e.to_string())?[..32].to_owned();
        let hash = Passwords::hash(&password).map_err(|e| e.to_string())?;
        let _lock = self.lock_users()?;
        let mut lines: Vec<(String, Role, String)> = self
            .user_lines()?
            .into_iter()
            .filter(|(existing, _, _)| existing != name)
            .collect();
        lines.push((name.to_owned(), role, hash));
        let mut text = String::from("# pbrs broker users: <name> <role> <argon2 hash>\n");
        for (name, role, hash) in &lines {
            text.push_str(&format!("{name} {role} {hash}\n"));
        }
        replace_private(&self.users_path(), text.as_bytes())?;
        Ok(password)
    }

    /// Holds the lock of the users file while alive: two `add-user`s at once take turns.
    fn lock_users(&self) -> Result<std::fs::File, String> {
        let path = self.path.join(format!("{USERS_FILE}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("could not open {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("could not lock {}: {e}", path.display()))?;
        Ok(file)
    }

    fn users_path(&self) -> PathBuf {
        self.path.join(USERS_FILE)
    }

    fn user_lines(&self) -> Result<Vec<(String, Role, String)>, String> {
        let path = self.users_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("could not read {}: {e}", path.display()))?;
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{}:{}: {why}", path.display(), n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, role, hash] = fields[..] else {
                return Err(bad("expected `<name> <role> <argon2 hash>`"));
            };
            let role: Role = role.parse().map_err(|e| bad(&format!("{e}")))?;
            lines.push((name.to_owned(), role, hash.to_owned()));
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "pbrs-data-{tag}-{}-{}",
            std::process::id(),
            SturdyUrl::new_secret().unwrap()
        ))
    }

    #[tokio::test]
    async fn users_identity_and_secret_survive_a_reopen() {
        let path = temp_dir("reopen");
        let data = DataDir::open(&path).unwrap();
        let password = data.add_user("w1", Role::Worker).unwrap();
        let replaced = data.add_user("fe", Role::FrontEnd).unwrap();
        let fe_password = data.add_user("fe", Role::FrontEnd).unwrap();
        assert_ne!(replaced, fe_password);
        let fingerprint = data.identity().unwrap().fingerprint();
        let secret = data.url_secret().unwrap();

        let again = DataDir::open(&path).unwrap();
        assert_eq!(again.identity().unwrap().fingerprint(), fingerprint);
        assert_eq!(again.url_secret().unwrap(), secret);
        let users = again.users().unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.role("w1"), Some(Role::Worker));
        assert!(users.passwords().check("w1", &password).await);
        assert!(users.passwords().check("fe", &fe_password).await);
        assert!(!users.passwords().check("fe", &replaced).await);
        let text = std::fs::read_to_string(path.join(USERS_FILE)).unwrap();
        assert!(!text.contains(&password), "a password was stored in clear");
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_bad_users_file_names_the_line() {
        let path = temp_dir("bad");
        let data = DataDir::open(&path).unwrap();
        std::fs::write(path.join(USERS_FILE), "# ok\nann chief $argon2id$x\n").unwrap();
        let e = data.users().unwrap_err();
        assert!(e.contains("users:2") && e.contains("chief"), "{e}");
        std::fs::write(path.join(USERS_FILE), "ann worker\n").unwrap();
        assert!(
            data.users()
                .unwrap_err()
                .contains("expected `<name> <role>")
        );
        std::fs::write(path.join(URL_SECRET_FILE), "short\n").unwrap();
        assert!(
            data.url_secret()
                .unwrap_err()
                .contains("does not hold a URL secret")
        );
        assert!(data.add_user("no spaces", Role::Admin).is_err());
        std::fs::remove_dir_all(&path).unwrap();
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    /// `add-user`s run at once take turns: every one of them is in the file afterwards.
    #[test]
    fn concurrent_add_users_all_land() {
        let path = std::env::temp_dir().join(format!(
            "pbrs-data-concurrent-{}",
            &SturdyUrl::new_secret().unwrap()[..16]
        ));
        let data = DataDir::open(&path).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let data = data.clone();
                std::thread::spawn(move || data.add_user(&format!("u{n}"), Role::Worker))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
        assert_eq!(data.users().unwrap().len(), 8);
        std::fs::remove_dir_all(&path).unwrap();
    }
}
