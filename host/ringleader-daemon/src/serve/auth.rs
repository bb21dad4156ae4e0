//! The API's bearer tokens, never logged: the data directory's own (`DIR/api-token`,
//! random, created on first start with mode 0600) and named ones, one file each in
//! `DIR/tokens/` (`ringleader token new NAME`), so that each script or operator has
//! its own, named in the audit log, and can lose it alone. The named tokens are read
//! again when their folder changes: adding or revoking one needs no restart.

use anyhow::Context;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "api-token";

/// The name audit entries give to requests made with the data directory's token.
pub const TOKEN_NAME: &str = "api-token";

/// The folder of named tokens in the data directory.
pub const TOKENS_DIR: &str = "tokens";

/// Characters a token has at least.
const MIN_SECRET: usize = 32;

/// Whether `name` may name a token: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit, and not the data directory's own.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name != TOKEN_NAME;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a token: use 1 to 64 of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit (and not `{TOKEN_NAME}`)"
        ))
    }
}

/// 32 random bytes, hex.
fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("failed to read random bytes for the API token")?;
    Ok(hex::encode(bytes))
}

/// Writes a new token to `path`, which must not exist, readable by the owner only.
fn write_new(path: &Path) -> anyhow::Result<String> {
    let secret = new_secret()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(secret)
}

/// Creates the named token `name` in the data directory `data`; returns its file.
pub fn create_named(data: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let dir = data.join(TOKENS_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join(name);
    if path.exists() {
        anyhow::bail!(
            "a token named `{name}` exists ({}); revoke it first to make a new one",
            path.display()
        );
    }
    write_new(&path)?;
    Ok(path)
}

/// A named token's file, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedToken {
    pub name: String,
    pub path: PathBuf,
    pub created: Option<SystemTime>,
    /// Why the daemon ignores it, if it does.
    pub ignored: Option<String>,
}

/// Who must own the token files: the owner of the data directory's own token (the
/// daemon's user), else of the data directory.
fn owner(data: &Path) -> Option<u32> {
    std::fs::metadata(data.join(TOKEN_FILE))
        .or_else(|_| std::fs::metadata(data))
        .ok()
        .map(|m| m.uid())
}

/// Why the folder of named tokens cannot be trusted, if it cannot: it must be a folder
/// (not a link to one) of the daemon's user that nobody else can write to, or anyone
/// could add a token.
fn untrusted_folder(dir: &Path, owner: Option<u32>) -> Option<String> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_dir() {
        Some(format!("{} is not a folder", dir.display()))
    } else if Some(meta.uid()) != owner {
        Some(format!(
            "{} belongs to another user than the daemon's token",
            dir.display()
        ))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "{} can be written by others (mode {mode:o}); `chmod 700` it",
            dir.display()
        ))
    } else {
        None
    }
}

/// The named tokens of the data directory `data`, by name, with their secrets when
/// usable.
fn read_named(data: &Path) -> Vec<(NamedToken, Option<String>)> {
    let dir = data.join(TOKENS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let owner = owner(data);
    let folder = untrusted_folder(&dir, owner);
    let mut out: Vec<(NamedToken, Option<String>)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Not followed: a link could lead to anybody's file.
            let meta = std::fs::symlink_metadata(&path);
            let created = meta.as_ref().ok().and_then(|m| m.modified().ok());
            let secret = (|| {
                if let Some(why) = &folder {
                    return Err(why.clone());
                }
                check_name(&name)?;
                let meta = meta.map_err(|e| format!("cannot read it: {e}"))?;
                if !meta.is_file() {
                    return Err("it is not a plain file (links are not followed)".to_string());
                }
                if Some(meta.uid()) != owner {
                    return Err("it belongs to another user than the daemon's token".into());
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "it is readable by others (mode {mode:o}); `chmod 600` it"
                    ));
                }
                let secret = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read it: {e}"))?
                    .trim()
                    .to_string();
                if secret.len() < MIN_SECRET {
                    return Err(format!("it holds under {MIN_SECRET} characters"));
                }
                Ok(secret)
            })();
            let (secret, ignored) = match secret {
                Ok(secret) => (Some(secret), None),
                Err(why) => (None, Some(why)),
            };
            let token = NamedToken {
                name,
                path,
                created,
                ignored,
            };
            (token, secret)
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

/// The named tokens of the data directory `data`, by name.
pub fn list_named(data: &Path) -> Vec<NamedToken> {
    read_named(data)
        .into_iter()
        .map(|(token, _)| token)
        .collect()
}

/// Revokes the named token `name`: its file is removed.
pub fn revoke_named(data: &Path, name: &str) -> anyhow::Result<PathBuf> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let path = data.join(TOKENS_DIR).join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "no token named `{name}` ({} does not exist)",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("failed to remove {}", path.display())),
    }
}

/// When a token's folder or files last changed (inode, change time, size, mode,
/// owner), to know when to read them again.
type Seen = Vec<(String, Option<(u64, i64, i64, u64, u32, u32)>)>;

fn seen(dir: &Path) -> Seen {
    let stamp = |path: &Path| {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some((
            m.ino(),
            m.ctime(),
            m.ctime_nsec(),
            m.len(),
            m.mode(),
            m.uid(),
        ))
    };
    let mut out = vec![(String::new(), stamp(dir))];
    if let Ok(entries) = std::fs::read_dir(dir) {
        out.extend(entries.filter_map(Result::ok).map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, stamp(&entry.path()))
        }));
    }
    out.sort();
    out
}

/// Every token the API accepts, by name.
#[derive(Debug)]
pub struct Tokens {
    main: Token,
    data: PathBuf,
    /// The named tokens as last read, and what their files looked like then.
    named: Mutex<(Seen, Vec<(String, String)>)>,
}

impl Tokens {
    /// The data directory's own token (made when missing) and its named ones.
    pub fn load_or_create(data: &Path) -> anyhow::Result<Tokens> {
        Ok(Tokens {
            main: Token::load_or_create(data)?,
            data: data.to_owned(),
            named: Mutex::new((Vec::new(), Vec::new())),
        })
    }

    /// The data directory's own token file.
    pub fn path(&self) -> &Path {
        &self.main.path
    }

    /// The name of the token an `Authorization` header carries, if the API accepts it
    /// (compared in constant time).
    pub fn accepts(&self, header: Option<&str>) -> Option<String> {
        if self.main.accepts(header) {
            return Some(TOKEN_NAME.to_string());
        }
        let given = bearer(header)?;
        let now = seen(&self.data.join(TOKENS_DIR));
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if named.0 != now {
            let mut usable = Vec::new();
            for (token, secret) in read_named(&self.data) {
                match (secret, token.ignored) {
                    (Some(secret), _) => usable.push((token.name, secret)),
                    (None, Some(why)) => {
                        tracing::warn!("ignoring the token file {}: {why}", token.path.display())
                    }
                    (None, None) => {}
                }
            }
            *named = (now, usable);
        }
        named
            .1
            .iter()
            .find(|(_, secret)| same(given, secret))
            .map(|(name, _)| name.clone())
    }
}

/// The token of an `Authorization` header value: exactly `Bearer TOKEN` (the scheme in
/// any case, RFC 9110), one space, and a token with no white space in or around it. A
/// header in any other shape carries no token: a secret is never guessed at.
fn bearer(header: Option<&str>) -> Option<&str> {
    let header = header?;
    let (scheme, token) = header.split_at_checked("Bearer ".len())?;
    let ok = scheme.eq_ignore_ascii_case("Bearer ")
        && !token.is_empty()
        && !token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    ok.then_some(token)
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
fn same(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
                if secret.len() < MIN_SECRET {
                    anyhow::bail!(
                        "{} holds no usable token (at least 32 characters); delete it to have a new one made",
                        path.display()
                    );
                }
                Ok(Token { path, secret })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = write_new(&path)?;
                Ok(Token { path, secret })
            }
            Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
        }
    }

    /// Whether an `Authorization` header value carries this token (compared in
    /// constant time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        bearer(header).is_some_and(|given| same(given, &self.secret))
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
        // Exactly `Bearer TOKEN`: no second space, nothing trailing, no other scheme.
        assert!(again.accepts(Some(&format!("bearer {}", token.secret))));
        for shape in [
            "Bearer  {}",
            "Bearer {} ",
            "Bearer {}\t",
            " Bearer {}",
            "Bearer\t{}",
            "Basic {}",
            "{}",
            "Bearer {}x",
        ] {
            let header = shape.replace("{}", &token.secret);
            assert!(!again.accepts(Some(&header)), "{header:?}");
        }
        assert!(!again.accepts(Some("Bearer ")));
        std::fs::set_permissions(&token.path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
    }

    fn bearer(path: &Path) -> String {
        format!("Bearer {}", std::fs::read_to_string(path).unwrap().trim())
    }

    #[test]
    fn named_tokens_are_accepted_by_name_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        assert_eq!(
            tokens.accepts(Some(&bearer(tokens.path()))).as_deref(),
            Some(TOKEN_NAME)
        );
        let ci = create_named(dir.path(), "ci-bot").unwrap();
        let mode = std::fs::metadata(&ci).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let ops = create_named(dir.path(), "ops.alice").unwrap();
        assert_eq!(
            tokens.accepts(Some(&bearer(&ci))).as_deref(),
            Some("ci-bot")
        );
        assert_eq!(
            tokens.accepts(Some(&bearer(&ops))).as_deref(),
            Some("ops.alice")
        );
        assert_eq!(tokens.accepts(Some("Bearer nope")), None);
        let sloppy = format!("{} ", bearer(&ci).replace("Bearer ", "Bearer  "));
        assert_eq!(tokens.accepts(Some(&sloppy)), None);
        assert_eq!(tokens.accepts(Some(&format!("{} ", bearer(&ci)))), None);
        let again = create_named(dir.path(), "ci-bot").unwrap_err().to_string();
        assert!(again.contains("exists"), "{again}");

        // Revoked: refused at once, no restart.
        let ci_header = bearer(&ci);
        revoke_named(dir.path(), "ci-bot").unwrap();
        assert_eq!(tokens.accepts(Some(&ci_header)), None);
        let gone = revoke_named(dir.path(), "ci-bot").unwrap_err().to_string();
        assert!(gone.contains("no token named `ci-bot`"), "{gone}");

        // Rewritten in place with another token of the same length: only the new counts.
        let before = bearer(&ops);
        std::fs::write(&ops, format!("{}\n", "b".repeat(64))).unwrap();
        assert_eq!(tokens.accepts(Some(&before)), None);
        assert_eq!(
            tokens
                .accepts(Some(&format!("Bearer {}", "b".repeat(64))))
                .as_deref(),
            Some("ops.alice")
        );
    }

    #[test]
    fn named_token_files_anyone_else_could_have_written_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        let ops = create_named(dir.path(), "ops").unwrap();
        let header = bearer(&ops);
        let folder = dir.path().join(TOKENS_DIR);
        let chmod = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        assert_eq!(tokens.accepts(Some(&header)).as_deref(), Some("ops"));

        // A folder others can write to: none of its tokens.
        chmod(&folder, 0o777);
        assert_eq!(tokens.accepts(Some(&header)), None);
        let listed = list_named(dir.path());
        assert!(
            listed[0]
                .ignored
                .as_deref()
                .unwrap()
                .contains("written by others")
        );
        chmod(&folder, 0o700);
        assert_eq!(tokens.accepts(Some(&header)).as_deref(), Some("ops"));

        // A link, even to a good token file: not followed.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::rename(&ops, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &ops).unwrap();
        assert_eq!(tokens.accepts(Some(&header)), None);
        std::fs::remove_file(&ops).unwrap();
        std::fs::rename(&elsewhere, &ops).unwrap();
        assert_eq!(tokens.accepts(Some(&header)).as_deref(), Some("ops"));

        // Readable by others, or too short: ignored, and listed as such.
        chmod(&ops, 0o644);
        assert_eq!(tokens.accepts(Some(&header)), None);
        let short = folder.join("short");
        std::fs::write(&short, "abc").unwrap();
        chmod(&short, 0o600);
        assert_eq!(tokens.accepts(Some("Bearer abc")), None);
        let listed = list_named(dir.path());
        let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ops", "short"]);
        assert!(
            listed[0]
                .ignored
                .as_deref()
                .unwrap()
                .contains("readable by others")
        );
        assert!(listed[1].ignored.as_deref().unwrap().contains("under 32"));
    }

    #[test]
    fn token_names_are_plain() {
        for good in ["ci", "ci-bot", "ops.alice", "a_1", "9"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "CI",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            "api-token",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
