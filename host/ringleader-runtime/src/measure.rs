//! Caps on what a plugin returns, checked before the host keeps any of it.
//!
//! The guest's memory cap already bounds what it can build; these caps turn an absurd
//! result into a clear error that names the field, instead of into host memory.

use crate::bindings::PluginInfo;
use crate::limits::{MAX_RESULT_BYTES, MAX_RESULT_LIST, MAX_RESULT_STRING};
use ringleader_types::{BootState, DeviceScan, InstallOutcome, Patch, Readiness, VerifyReport};

/// Counts the strings and lists of one result.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    total: usize,
}

impl Meter {
    fn string(&mut self, field: &str, s: &str) -> Result<(), String> {
        if s.len() > MAX_RESULT_STRING {
            return Err(format!(
                "`{field}` is {} bytes long, over the limit of {MAX_RESULT_STRING}",
                s.len()
            ));
        }
        self.total += s.len();
        if self.total > MAX_RESULT_BYTES {
            return Err(format!(
                "its strings add up to more than {MAX_RESULT_BYTES} bytes"
            ));
        }
        Ok(())
    }

    fn strings(&mut self, field: &str, list: &[String]) -> Result<(), String> {
        self.list(field, list.len())?;
        list.iter().try_for_each(|s| self.string(field, s))
    }

    fn list(&mut self, field: &str, len: usize) -> Result<(), String> {
        if len > MAX_RESULT_LIST {
            return Err(format!(
                "`{field}` has {len} entries, over the limit of {MAX_RESULT_LIST}"
            ));
        }
        Ok(())
    }
}

/// A result whose size can be checked.
pub(crate) trait Measure {
    fn measure(&self, m: &mut Meter) -> Result<(), String>;
}

impl Measure for Patch {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.string("patch.id", &self.id)?;
        m.string("patch.vendor", &self.vendor)?;
        m.string("patch.title", &self.title)?;
        m.string("patch.component", &self.component)?;
        m.string("patch.fixed-version", &self.fixed_version)?;
        m.string("patch.applies-to", &self.applies_to)?;
        m.strings("patch.cves", &self.cves)?;
        m.strings("patch.prerequisites", &self.prerequisites)?;
        m.strings("patch.supersedes", &self.supersedes)?;
        m.string("patch.artifact.url", &self.artifact.url)?;
        m.string("patch.artifact.sha256", &self.artifact.sha256)
    }
}

impl Measure for Vec<Patch> {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.list("patches", self.len())?;
        self.iter().try_for_each(|p| p.measure(m))
    }
}

impl Measure for PluginInfo {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.string("info.name", &self.name)?;
        m.string("info.version", &self.version)?;
        m.string("info.description", &self.description)
    }
}

impl Measure for Readiness {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        match self {
            Readiness::Ready => Ok(()),
            Readiness::AlreadyInstalled(v) => m.string("already-installed", v),
            Readiness::Blocked(why) => m.string("blocked", why),
        }
    }
}

impl Measure for String {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.string("text", self)
    }
}

impl Measure for BootState {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        if let Some(id) = &self.boot_id {
            m.string("boot.boot-id", id)?;
        }
        m.strings("boot.pending-reasons", &self.pending_reasons)
    }
}

impl Measure for DeviceScan {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.list("components", self.components.len())?;
        for c in &self.components {
            m.string("component.name", &c.name)?;
            m.string("component.version", &c.version)?;
            if let Some(source) = &c.source {
                m.string("component.source", source)?;
            }
        }
        if let Some(os) = &self.os {
            m.string("os.id", &os.id)?;
            for text in [&os.version_id, &os.codename, &os.pretty_name]
                .into_iter()
                .flatten()
            {
                m.string("os", text)?;
            }
        }
        self.boot.measure(m)?;
        m.list("facts", self.facts.len())?;
        for (key, value) in &self.facts {
            m.string("fact.key", key)?;
            m.string("fact.value", value)?;
        }
        Ok(())
    }
}

impl Measure for InstallOutcome {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        m.string("installed-version", &self.installed_version)?;
        m.string("detail", &self.detail)
    }
}

impl Measure for VerifyReport {
    fn measure(&self, m: &mut Meter) -> Result<(), String> {
        if let Some(v) = &self.installed_version {
            m.string("installed-version", v)?;
        }
        m.list("health.checks", self.health.checks.len())?;
        for check in &self.health.checks {
            m.string("health.checks.name", &check.name)?;
            m.string("health.checks.detail", &check.detail)?;
        }
        Ok(())
    }
}
