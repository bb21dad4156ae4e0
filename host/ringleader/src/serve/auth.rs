//! The API's bearer token: random, created on first start in the data directory with
//! mode 0600, never logged.

use anyhow::Context;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "api-token";

/// The name audit entries give to requests made with the data directory's token.
pub const TOKEN_NAME: &str = "api-token";

#[derive(Clone)]
pub struct Token {
    pub path: PathBuf,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Reads `DIR/api-token`, or creates it (32 random bytes, hex) readable by the
    /// owner only. A token file others can read is refused.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Token> {
        let path = dir.join(TOKEN_FILE);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    anyhow::bail!(
                        "{} is readable by others (mode {mode:o}); run `chmod 600 {}` or delete it to have a new one made",
                        path.display(),
                        path.display()
                    );
                }
                let secret = std::fs::read_to_string(&path)
                    .with_context(|| format!("failed to read {}", path.display()))?
                    .trim()
                    .to_string();
                if secret.len() < 32 {
                    anyhow::bail!(
                        "{} holds no usable token (at least 32 characters); delete it to have a new one made",
                        path.display()
                    );
                }
                Ok(Token { path, secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .context("failed to read random bytes for the API token")?;
                let secret = hex::encode(bytes);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("failed to create {}", path.display()))?;
                file.write_all(secret.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("failed to write {}", path.display()))?;
                Ok(Token { path, secret })
            }
            Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
        }
    }

    /// Whether an `Authorization` header value carries this token (compared in
    /// constant time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), self.secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_owner_only_and_checked_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let token = Token::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(&token.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Token::load_or_create(dir.path()).unwrap();
        assert!(again.accepts(Some(&format!("Bearer {}", token.secret))));
        assert!(!again.accepts(Some("Bearer nope")));
        assert!(!again.accepts(None));
        std::fs::set_permissions(&token.path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
    }
}
