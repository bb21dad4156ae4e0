//! What a Debian device says about itself, read the same way by every plugin that
//! drives dpkg or apt (a library, not a plugin): the packages dpkg knows, with their
//! source packages and states; `/etc/os-release`; the boot id and boot time; and whether
//! a restart is pending (`/run/reboot-required`, `needrestart -b`).
//!
//! [`scan`] runs the commands through a caller-given `run` (each plugin's own `exec`
//! binding) and returns plain data the plugin converts to its WIT types; the parsers
//! are pure and tested here (`cargo test -p guest-debian`).

/// `dpkg-query -W -f=` format of [`parse_packages`]: name, source package, version,
/// `${db:Status-Abbrev}`.
pub const DPKG_QUERY_FORMAT: &str =
    "${Package}\t${source:Package}\t${Version}\t${db:Status-Abbrev}\n";

/// A package dpkg knows on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub package: String,
    /// The source package it was built from (its own name when dpkg names none).
    pub source: String,
    pub version: String,
    /// `${db:Status-Abbrev}`: desired action, state, error flag (`ii`, `iF`, `hi`, `iHR`).
    pub status: String,
}

impl Package {
    /// Installed and configured (a held package too).
    pub fn healthy(&self) -> bool {
        healthy(&self.status)
    }

    /// Some version of it is on the device: anything but `not installed` and
    /// `config-files only`.
    pub fn present(&self) -> bool {
        !matches!(self.status.chars().nth(1), Some('n' | 'c') | None)
    }

    /// Left half-way by dpkg (what `dpkg --audit` reports): unpacked, half-installed,
    /// half-configured, awaiting or pending triggers, or needing a reinstall.
    pub fn interrupted(&self) -> bool {
        let mut chars = self.status.chars().skip(1);
        matches!(chars.next(), Some('H' | 'U' | 'F' | 'W' | 't')) || chars.next() == Some('R')
    }
}

/// Whether `${db:Status-Abbrev}` says installed and configured.
pub fn healthy(status: &str) -> bool {
    let mut chars = status.chars();
    let _want = chars.next();
    chars.next() == Some('i') && !matches!(chars.next(), Some(c) if c != ' ')
}

/// dpkg's name of the state in `${db:Status-Abbrev}`.
pub fn state_name(status: &str) -> String {
    let mut chars = status.chars();
    let want = chars.next();
    let state = match chars.next() {
        Some('n') => "not installed",
        Some('c') => "config-files only",
        Some('H') => "half-installed",
        Some('U') => "unpacked",
        Some('F') => "half-configured",
        Some('W') => "triggers-awaited",
        Some('t') => "triggers-pending",
        Some('i') => "installed",
        _ => "unknown",
    };
    let mut name = state.to_string();
    if want == Some('h') {
        name.push_str(", held");
    }
    if chars.next() == Some('R') {
        name.push_str(", reinstall required");
    }
    name
}

/// `dpkg-query -W -f=DPKG_QUERY_FORMAT` output; lines without a version (packages
/// dpkg only remembers) are left out.
pub fn parse_packages(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let package = fields.next()?.to_string();
            let source = fields.next()?.to_string();
            let version = fields.next()?.to_string();
            let status = fields.next()?.to_string();
            (!version.is_empty() && !package.is_empty()).then(|| Package {
                source: if source.is_empty() {
                    package.clone()
                } else {
                    source
                },
                package,
                version,
                status,
            })
        })
        .collect()
}

/// The operating system, from `/etc/os-release` (os-release(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: Option<String>,
    pub codename: Option<String>,
    pub pretty_name: Option<String>,
}

/// `/etc/os-release`: `KEY=VALUE` lines, values optionally in single or double quotes
/// (with `\"`, `\\`, `` \` `` and `\$` escapes in double quotes), `#` comments. `ID`
/// defaults to `linux`, as os-release(5) says; `VERSION_CODENAME` falls back to the
/// codename in `VERSION` (`12 (bookworm)`), as Debian writes it for older releases.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut id = None;
    let mut version_id = None;
    let mut codename = None;
    let mut pretty_name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        let slot = match key.trim() {
            "ID" => &mut id,
            "VERSION_ID" => &mut version_id,
            "VERSION_CODENAME" => &mut codename,
            "PRETTY_NAME" => &mut pretty_name,
            "VERSION" => &mut version,
            _ => continue,
        };
        *slot = Some(value).filter(|v| !v.is_empty());
    }
    let codename = codename.or_else(|| {
        let v: String = version?;
        let inner = v.split_once('(')?.1.split_once(')')?.0.trim().to_string();
        let word = inner.split_whitespace().next()?.to_lowercase();
        (!word.is_empty()).then_some(word)
    });
    OsRelease {
        id: id.unwrap_or_else(|| "linux".into()),
        version_id,
        codename,
        pretty_name,
    }
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    match bytes.first() {
        Some(b'\'') => raw[1..].strip_suffix('\'').unwrap_or(&raw[1..]).to_string(),
        Some(b'"') => {
            let inner = raw[1..].strip_suffix('"').unwrap_or(&raw[1..]);
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => raw.to_string(),
    }
}

/// The boot time (`btime`, seconds since the epoch) in `/proc/stat`.
pub fn boot_time(proc_stat: &str) -> Option<i64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether a failed `systemctl reboot` over SSH failed only because the device went
/// down under it: ssh reports the session cut (`closed by remote host`, a reset
/// connection) when the restart is quicker than the command's return. The reboot has
/// started; the engine's wait for another boot id tells whether it came back.
pub fn cut_by_the_restart(error: &str) -> bool {
    ["closed by remote host", "Connection reset", "Broken pipe"]
        .iter()
        .any(|said| error.contains(said))
}

/// A boot id as `/proc/sys/kernel/random/boot_id` holds it: one line; `None` when empty.
pub fn boot_id(text: &str) -> Option<String> {
    let id = text.trim();
    (!id.is_empty() && id.len() <= 128 && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

/// Why `needrestart -b` (its batch output: `NEEDRESTART-KSTA: N`, `NEEDRESTART-KCUR`,
/// `NEEDRESTART-KEXP`) says the device must restart, if it does: a kernel status of 2
/// (an ABI-compatible upgrade) or 3 (a version upgrade) is pending.
pub fn needrestart_reason(batch: &str) -> Option<String> {
    let field = |key: &str| {
        batch.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    };
    let status: u8 = field("NEEDRESTART-KSTA")?.parse().ok()?;
    if status < 2 {
        return None;
    }
    let running = field("NEEDRESTART-KCUR").unwrap_or_default();
    let expected = field("NEEDRESTART-KEXP").unwrap_or_default();
    Some(match (running.is_empty(), expected.is_empty()) {
        (false, false) => format!("needrestart: kernel {running} runs, {expected} is installed"),
        _ if status == 2 => "needrestart: an ABI-compatible kernel upgrade is pending".into(),
        _ => "needrestart: a kernel upgrade is pending".into(),
    })
}

/// Why `/run/reboot-required` (and `.pkgs`, the packages that asked) says so.
pub fn reboot_required_reason(pkgs: Option<&str>) -> String {
    let names: Vec<&str> = pkgs
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        "/run/reboot-required".into()
    } else {
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        format!("/run/reboot-required: {}", unique.join(", "))
    }
}

/// What a program printed and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Whether a restart is pending, and the boot id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Boot {
    pub boot_id: Option<String>,
    pub booted_at: Option<i64>,
    pub reboot_pending: bool,
    pub pending_reasons: Vec<String>,
}

/// What [`scan`] read.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Every package with a version on the device (see [`Package::present`]).
    pub packages: Vec<Package>,
    /// `None` when neither `/etc/os-release` nor `/usr/lib/os-release` could be read.
    pub os: Option<OsRelease>,
    pub boot: Boot,
    /// `dpkg.interrupted`: packages dpkg left half-way, when there are any.
    pub facts: Vec<(String, String)>,
}

/// The arguments of `dpkg-query` listing every package, under `root` when the device
/// is a directory tree with its own dpkg database.
pub fn dpkg_query_args(root: Option<&str>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(root) = root {
        args.push(format!("--admindir={root}/var/lib/dpkg"));
    }
    args.push("-W".into());
    args.push(format!("-f={DPKG_QUERY_FORMAT}"));
    args
}

/// Reads the device through `run` (`program`, `args`): `dpkg-query -W` (its failure
/// fails the scan), then with `cat` the os-release file, the boot id, `/proc/stat`,
/// `/run/reboot-required` and its `.pkgs` (a file that is absent or cannot be read is
/// simply not known), and `needrestart -b` (absent, or refused by the capability: not
/// consulted). Paths are under `root` when given.
pub fn scan<E>(
    root: Option<&str>,
    mut run: impl FnMut(&str, Vec<String>) -> Result<Output, E>,
    dpkg_failed: impl FnOnce(&Output) -> E,
) -> Result<Scan, E> {
    let out = run("dpkg-query", dpkg_query_args(root))?;
    if out.exit_code != 0 {
        return Err(dpkg_failed(&out));
    }
    let all = parse_packages(&String::from_utf8_lossy(&out.stdout));
    let interrupted: Vec<String> = all
        .iter()
        .filter(|p| p.interrupted())
        .map(|p| format!("{} {} ({})", p.package, p.version, state_name(&p.status)))
        .collect();
    let packages: Vec<Package> = all.into_iter().filter(Package::present).collect();
    let at = |path: &str| format!("{}{path}", root.unwrap_or_default());
    // A file that cannot be read (absent, or `cat` refused: the host logs a refusal
    // as a warning) is not known; the packages are what a scan must have.
    let mut read = |path: &str| -> Result<Option<String>, E> {
        Ok(match run("cat", vec![at(path)]) {
            Ok(out) if out.exit_code == 0 => {
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            _ => None,
        })
    };
    let os = match read("/etc/os-release")? {
        Some(text) => Some(parse_os_release(&text)),
        None => read("/usr/lib/os-release")?.map(|t| parse_os_release(&t)),
    };
    let mut boot = Boot {
        boot_id: read("/proc/sys/kernel/random/boot_id")?.and_then(|t| boot_id(&t)),
        booted_at: read("/proc/stat")?.and_then(|t| boot_time(&t)),
        ..Boot::default()
    };
    if read("/run/reboot-required")?.is_some() {
        let pkgs = read("/run/reboot-required.pkgs")?;
        boot.pending_reasons
            .push(reboot_required_reason(pkgs.as_deref()));
    }
    if root.is_none()
        && let Ok(out) = run("needrestart", vec!["-b".into()])
        && out.exit_code == 0
        && let Some(reason) = needrestart_reason(&String::from_utf8_lossy(&out.stdout))
    {
        boot.pending_reasons.push(reason);
    }
    boot.reboot_pending = !boot.pending_reasons.is_empty();
    let mut facts = Vec::new();
    if !interrupted.is_empty() {
        facts.push(("dpkg.interrupted".to_string(), interrupted.join(", ")));
    }
    Ok(Scan {
        packages,
        os,
        boot,
        facts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_with_their_sources_and_states() {
        let text = "libc6\tglibc\t2.36-9+deb12u4\tii \nbash\t\t5.2.15-2+b2\tii \nfoo\tfoo\t1.0-1\tiF \nold\told\t\trc \ngone\tgone\t0.9\trc \n";
        let all = parse_packages(text);
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(all[0].source, "glibc");
        assert_eq!(all[1].source, "bash", "no source: its own name");
        assert!(all[0].healthy() && all[0].present() && !all[0].interrupted());
        assert!(!all[2].healthy() && all[2].present() && all[2].interrupted());
        assert_eq!(state_name(&all[2].status), "half-configured");
        assert!(!all[3].present(), "config files only");
        assert_eq!(state_name("hi "), "installed, held");
        assert_eq!(state_name("iHR"), "half-installed, reinstall required");
    }

    #[test]
    fn os_release_as_debian_and_others_write_it() {
        let bookworm = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(
            parse_os_release(bookworm),
            OsRelease {
                id: "debian".into(),
                version_id: Some("12".into()),
                codename: Some("bookworm".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }
        );
        // Old releases name the codename in VERSION only; quotes and escapes.
        let old = "# comment\nID='debian'\nVERSION=\"8 (jessie)\"\nPRETTY_NAME=\"a \\\"quoted\\\" \\$name\"\n";
        let os = parse_os_release(old);
        assert_eq!(os.codename.as_deref(), Some("jessie"));
        assert_eq!(os.pretty_name.as_deref(), Some("a \"quoted\" $name"));
        assert_eq!(os.version_id, None);
        // Testing/unstable: no VERSION_ID; an empty file is `linux`.
        let sid =
            "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nID=debian\nVERSION_CODENAME=trixie\n";
        assert_eq!(parse_os_release(sid).codename.as_deref(), Some("trixie"));
        assert_eq!(parse_os_release("garbage\n\n").id, "linux");
    }

    #[test]
    fn boot_facts_and_pending_restarts() {
        assert_eq!(
            boot_time("cpu  1 2 3\nintr 5\nbtime 1764662400\nprocesses 9\n"),
            Some(1_764_662_400)
        );
        assert_eq!(boot_time("cpu 1\n"), None);
        assert_eq!(
            boot_id("5f0c2b1e-95a4-4f3e-9d59-0a1b2c3d4e5f\n").as_deref(),
            Some("5f0c2b1e-95a4-4f3e-9d59-0a1b2c3d4e5f")
        );
        assert_eq!(boot_id("  \n"), None);
        let kernel = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-25-amd64\nNEEDRESTART-KEXP: 6.1.0-28-amd64\nNEEDRESTART-KSTA: 3\n";
        assert_eq!(
            needrestart_reason(kernel).as_deref(),
            Some("needrestart: kernel 6.1.0-25-amd64 runs, 6.1.0-28-amd64 is installed")
        );
        assert_eq!(
            needrestart_reason("NEEDRESTART-KSTA: 1\nNEEDRESTART-KCUR: 6.1.0-28-amd64\n"),
            None
        );
        assert_eq!(needrestart_reason("NEEDRESTART-KSTA: 0\n"), None);
        assert_eq!(needrestart_reason("nonsense"), None);
        assert_eq!(
            reboot_required_reason(Some("linux-image-6.1.0-28-amd64\nlibc6\nlibc6\n")),
            "/run/reboot-required: libc6, linux-image-6.1.0-28-amd64"
        );
        assert_eq!(reboot_required_reason(None), "/run/reboot-required");
    }

    #[test]
    fn a_scan_reads_every_file_under_the_root_and_skips_what_is_absent() {
        let mut asked = Vec::new();
        let scan = scan(
            Some("/srv/dev1"),
            |program, args| -> Result<Output, String> {
                asked.push(format!("{program} {}", args.join(" ")));
                let ok = |s: &str| Output {
                    exit_code: 0,
                    stdout: s.as_bytes().to_vec(),
                    stderr: vec![],
                };
                let missing = Output {
                    exit_code: 1,
                    ..Output::default()
                };
                Ok(match (program, args.last().map(String::as_str)) {
                    ("dpkg-query", _) => ok("hello\thello\t1.0-1\tii \nfoo\tfoo\t1.0-1\tiF \n"),
                    ("cat", Some("/srv/dev1/etc/os-release")) => {
                        ok("ID=debian\nVERSION_CODENAME=bookworm\n")
                    }
                    ("cat", Some("/srv/dev1/proc/sys/kernel/random/boot_id")) => ok("b1\n"),
                    ("cat", Some("/srv/dev1/run/reboot-required")) => {
                        ok("*** System restart required ***\n")
                    }
                    _ => missing,
                })
            },
            |_| "dpkg failed".to_string(),
        )
        .unwrap();
        assert_eq!(scan.packages.len(), 2);
        assert_eq!(scan.os.unwrap().codename.as_deref(), Some("bookworm"));
        assert_eq!(scan.boot.boot_id.as_deref(), Some("b1"));
        assert_eq!(scan.boot.booted_at, None);
        assert!(scan.boot.reboot_pending);
        assert_eq!(scan.boot.pending_reasons, ["/run/reboot-required"]);
        assert_eq!(
            scan.facts,
            [(
                "dpkg.interrupted".to_string(),
                "foo 1.0-1 (half-configured)".to_string()
            )]
        );
        assert!(asked[0].starts_with("dpkg-query --admindir=/srv/dev1/var/lib/dpkg -W"));
        assert!(
            !asked.iter().any(|a| a.starts_with("needrestart")),
            "not in a root: {asked:?}"
        );
    }
}

/// The conversions of a [`Scan`] and a [`Boot`] into a plugin's own WIT 0.3.0 types
/// (`DeviceScan`, `Component`, `OsRelease`, `BootState`, `VersionScheme`, which
/// `wit_bindgen::generate!` makes per plugin), written once: `device_scan(Scan) ->
/// DeviceScan` and `boot_state(Boot) -> BootState`. Invoke it where those types are in
/// scope.
#[macro_export]
macro_rules! wit_conversions {
    () => {
        /// What `guest_debian::scan` read, in the contract's types.
        fn device_scan(scan: $crate::Scan) -> DeviceScan {
            DeviceScan {
                components: scan
                    .packages
                    .into_iter()
                    .map(|p| Component {
                        name: p.package,
                        version: p.version,
                        scheme: Some(VersionScheme::Deb),
                        source: Some(p.source),
                    })
                    .collect(),
                os: scan.os.map(|o| OsRelease {
                    id: o.id,
                    version_id: o.version_id,
                    codename: o.codename,
                    pretty_name: o.pretty_name,
                }),
                boot: boot_state(scan.boot),
                facts: scan.facts,
            }
        }

        /// The boot state `guest_debian::scan` read, in the contract's type.
        fn boot_state(b: $crate::Boot) -> BootState {
            BootState {
                boot_id: b.boot_id,
                booted_at: b.booted_at,
                reboot_pending: b.reboot_pending,
                pending_reasons: b.pending_reasons,
            }
        }
    };
}
