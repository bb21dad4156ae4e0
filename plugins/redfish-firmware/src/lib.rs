//! Redfish firmware installer: updates a server's firmware (its BIOS, and what its BMC
//! lists in the firmware inventory: network adapters, the BMC itself, ...) with DMTF
//! Redfish `UpdateService.SimpleUpdate`, using only the `http` capability, scoped to
//! the device's own BMC.
//!
//! - The device is the BMC: its inventory `hostname` is the BMC's address. The base
//!   URL is the fact `redfish.url`, else the `http` transport's address (the fact
//!   `http.address`, e.g. `https://10.1.0.11`), else `https://<hostname>`; the host
//!   refuses any request to another host than `hostname`.
//! - The system is the fact `redfish.system` (its Redfish id or name; a BMC may
//!   answer a name with a redirect to the id), or the BMC's only system.
//! - A patch's component is found on the BMC as:
//!   - the system's BIOS, when it is the component named by the fact
//!     `redfish.bios-component` (default `bios`) and the system has a `BiosVersion`:
//!     read back from it, updated with the system as SimpleUpdate's target;
//!   - else (or when the fact `redfish.firmware.<component>` names an entry) an entry
//!     of the update service's `FirmwareInventory` (a SoftwareInventory): the entry
//!     the fact `redfish.firmware.<component>` names (its path; or its `Id`, the start
//!     of its `Id` before a `-`, or its `SoftwareId`), else the one entry whose
//!     `SoftwareId` or `Id` is the component and that belongs to the system (its
//!     `RelatedItem` is under the system or one of its chassis, or names nothing).
//!     `Previous-...` and `Available-...` entries (Dell's kept and staged images) are
//!     never the running firmware. Read back from the entry's `Version`, updated with
//!     the entry as the target; an entry marked `Updateable: false` is not touched.
//!
//!   A component found nowhere, or twice, is refused rather than flashed to the wrong
//!   place, with the inventory's components in the message.
//! - `install` posts SimpleUpdate with the patch's artifact URL as `ImageURI` (the BMC
//!   fetches the image) and one target, follows the task the BMC returns until it
//!   ends, then reads the version back. `rollback` does the same with the image of the
//!   version to go back to (the host passes it when the catalog has it).
//! - A patch that needs a restart (`reboot-required`) is asked to apply at the next
//!   reset (`@Redfish.OperationApplyTime: OnReset`) when the SimpleUpdate action lists
//!   `OnReset` in its `@Redfish.OperationApplyTimeSupport`; an update the BMC staged
//!   (the version read back is still the old one, as iDRAC and iLO do with BIOS images)
//!   is reported `reboot-pending`, and the engine verifies it after the reset.
//! - `reboot` posts `ComputerSystem.Reset` with the first of GracefulRestart,
//!   ForceRestart, PowerCycle that the BMC allows, following its task; `boot-state`'s
//!   boot id is `BootProgress.LastState@LastStateTime`, and a system powered off or in
//!   its POST is "not up yet" (a transient error).
//! - Redirects (301, 302, 303, 307, 308) are followed, each checked by the host like
//!   any request. Redfish error bodies (`error.message`, `@Message.ExtendedInfo`) are
//!   quoted in errors; 5xx and 429 are transient, other refusals permanent.
//! - An update is remembered in `kv` from before it is posted until its task ends: called
//!   again after the host stopped mid-update, `install` follows that task instead of
//!   flashing again. When the host stopped before the BMC's answer was recorded, the
//!   plugin looks for the task among the BMC's tasks (`TaskService/Tasks`, by the request
//!   in each task's `Payload`) before it posts anything.
//! - Setting (optional): `task-poll-ms`, the time between two polls of a running task
//!   (default 5000).
//! - Credentials never pass through the plugin: the host adds the operator's
//!   (`[credentials.NAME]` in its config) to requests to the device's hostname.

wit_bindgen::generate!({
    path: "../../wit/ringleader-plugin@0.3.0",
    world: "installer",
});

use exports::ringleader::plugin::installer_api::Guest;
use ringleader::plugin::clock;
use ringleader::plugin::http::{self, Method, Request};
use ringleader::plugin::kv;
use ringleader::plugin::log::{Level, log};
use ringleader::plugin::settings;
use ringleader::plugin::types::{
    BootState, Component, Device, DeviceScan, HealthCheck, HealthReport, InstallOutcome, Patch,
    PluginError, PluginInfo, Readiness, RollbackTarget, VerifyReport,
};
use serde_json::{Value, json};

struct RedfishFirmware;

/// Redirects followed for one request before giving up.
const MAX_REDIRECTS: usize = 5;
/// Between two polls of a running task, unless the operator's setting `task-poll-ms`
/// says otherwise.
const TASK_POLL_MS: u32 = 5_000;
/// How long a task may run before the install is reported as not finished (under the
/// manifest's 30 minute deadline, so the plugin says what it saw).
const TASK_DEADLINE_SECONDS: i64 = 25 * 60;
/// One request to the BMC.
const REQUEST_TIMEOUT_MS: u32 = 60_000;
const SERVICE_ROOT: &str = "/redfish/v1/";
/// `BootProgress.LastState` values of a system still starting: the firmware's POST,
/// before the OS boots.
const STARTING: &[&str] = &[
    "PrimaryProcessorInitializationStarted",
    "BusInitializationStarted",
    "MemoryInitializationStarted",
    "SecondaryProcessorInitializationStarted",
    "PCIResourceConfigStarted",
    "SystemHardwareInitializationComplete",
];
/// Task states after which a task never changes again.
const TERMINAL: &[&str] = &["Completed", "Exception", "Killed", "Cancelled"];

fn fact<'a>(device: &'a Device, key: &str) -> Option<&'a str> {
    device
        .facts
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The BMC of one device: its base URL and the system the calls are about.
struct Bmc {
    /// `scheme://authority`, no trailing slash.
    origin: String,
    device: String,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The URL that answered (after redirects).
    url: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Bmc {
    fn of(device: &Device) -> Result<Bmc, PluginError> {
        let base = match fact(device, "redfish.url").or_else(|| fact(device, "http.address")) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("https://{}", device.hostname),
        };
        let origin = origin(&base).ok_or_else(|| {
            PluginError::Permanent(format!(
                "the fact redfish.url of {} is `{base}`, not an http:// or https:// URL",
                device.id
            ))
        })?;
        Ok(Bmc {
            origin: origin.to_string(),
            device: device.id.clone(),
        })
    }

    /// `location` made absolute: as is when it has a scheme, else on the BMC's origin.
    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.origin)
        } else {
            format!("{}/{location}", self.origin)
        }
    }

    /// One request, following redirects.
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, PluginError> {
        let mut url = self.resolve(path);
        let mut method = method;
        let mut body = body.map(|b| b.to_string().into_bytes());
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = vec![
                ("Accept".to_string(), "application/json".to_string()),
                ("OData-Version".to_string(), "4.0".to_string()),
            ];
            if body.is_some() {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            let answer = http::send(&Request {
                method,
                url: url.clone(),
                headers,
                body: body.clone().unwrap_or_default(),
                timeout_ms: Some(REQUEST_TIMEOUT_MS),
            })?;
            let response = Response {
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
                url: url.clone(),
            };
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Err(PluginError::Permanent(format!(
                    "the BMC of {} answered {} for {url} without a Location",
                    self.device, response.status
                )));
            };
            url = self.resolve(location);
            // 303 (and, by old custom, 301/302 after a POST) continue with a GET;
            // 307 and 308 repeat the same request at the new place.
            if matches!(response.status, 301..=303) && method != Method::Get {
                method = Method::Get;
                body = None;
            }
        }
        Err(PluginError::Permanent(format!(
            "the BMC of {} redirected {path} more than {MAX_REDIRECTS} times",
            self.device
        )))
    }

    /// GET of a resource that must answer 200 with JSON.
    fn get(&self, path: &str, what: &str) -> Result<(Value, String), PluginError> {
        let response = self.send(Method::Get, path, None)?;
        if response.status != 200 {
            return Err(refusal(&self.device, &response, &format!("reading {what}")));
        }
        let value = serde_json::from_slice(&response.body).map_err(|e| {
            PluginError::Permanent(format!(
                "the BMC of {} sent {what} ({}) that is not JSON: {e}",
                self.device, response.url
            ))
        })?;
        Ok((value, response.url))
    }

    /// The system the device's calls are about: its `@odata.id` and the resource.
    fn system(&self, device: &Device) -> Result<(String, Value), PluginError> {
        let path = match fact(device, "redfish.system") {
            Some(system) => format!("{SERVICE_ROOT}Systems/{system}"),
            None => {
                let (systems, _) = self.get(&format!("{SERVICE_ROOT}Systems"), "the systems")?;
                let members = systems["Members"].as_array().cloned().unwrap_or_default();
                match members.as_slice() {
                    [one] => one["@odata.id"].as_str().unwrap_or_default().to_string(),
                    _ => {
                        return Err(PluginError::Permanent(format!(
                            "the BMC of {} has {} systems: set the fact redfish.system to the one to update",
                            device.id,
                            members.len()
                        )));
                    }
                }
            }
        };
        let (system, url) = self.get(&path, "the system")?;
        let id = system["@odata.id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| url.trim_start_matches(&self.origin).to_string());
        Ok((id, system))
    }

    /// Where SimpleUpdate is posted, the transfer protocols the service accepts (empty:
    /// it does not say), and whether it can stage an update until the next reset
    /// (`@Redfish.OperationApplyTimeSupport` lists `OnReset`).
    fn update_service(&self) -> Result<UpdateAction, PluginError> {
        let service = self.service()?;
        if service["ServiceEnabled"] == Value::Bool(false) {
            return Err(PluginError::Transient(format!(
                "the update service of the BMC of {} is disabled (ServiceEnabled: false)",
                self.device
            )));
        }
        let action = &service["Actions"]["#UpdateService.SimpleUpdate"];
        let Some(target) = action["target"].as_str() else {
            return Err(PluginError::Permanent(format!(
                "the BMC of {} offers no UpdateService.SimpleUpdate action",
                self.device
            )));
        };
        let protocols = action["TransferProtocol@Redfish.AllowableValues"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let on_reset = action["@Redfish.OperationApplyTimeSupport"]["SupportedValues"]
            .as_array()
            .is_some_and(|values| values.iter().any(|v| v.as_str() == Some("OnReset")));
        Ok(UpdateAction {
            target: target.to_string(),
            protocols,
            on_reset,
        })
    }

    /// The update service resource.
    fn service(&self) -> Result<Value, PluginError> {
        let (root, _) = self.get(SERVICE_ROOT, "the service root")?;
        let path = root["UpdateService"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/UpdateService")
            .to_string();
        Ok(self.get(&path, "the update service")?.0)
    }

    /// The component `component` of the device's system as the BMC reports it now, or
    /// why the BMC has no such component for the system.
    fn read(
        &self,
        device: &Device,
        component: &str,
    ) -> Result<Result<Reading, String>, PluginError> {
        let (system_id, system) = self.system(device)?;
        let health = system["Status"]["Health"].as_str().unwrap_or("OK");
        let rollup = system["Status"]["HealthRollup"].as_str().unwrap_or(health);
        let power = system["PowerState"].as_str().unwrap_or("unknown");
        let system_check = HealthCheck {
            name: "redfish:health".into(),
            ok: health != "Critical" && rollup != "Critical",
            detail: format!("Health {health}, HealthRollup {rollup}, PowerState {power}"),
        };
        let named = fact(device, &format!("redfish.firmware.{component}")).is_some();
        if let Some(bios) = system["BiosVersion"].as_str()
            && component == bios_component(device)
            && !named
        {
            return Ok(Ok(Reading {
                what: "BIOS".into(),
                target: system_id,
                version: Some(bios.to_string()),
                updateable: true,
                checks: vec![system_check],
            }));
        }
        let (entry, path) = match self.inventory_entry(device, component, &system_id, &system)? {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let id = entry["Id"].as_str().unwrap_or(component);
        // Its own `@odata.id`, else where it was read from: never an empty target.
        let target = entry["@odata.id"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or(&path)
            .to_string();
        let entry_health = entry["Status"]["Health"].as_str().unwrap_or("OK");
        let state = entry["Status"]["State"].as_str().unwrap_or("Enabled");
        Ok(Ok(Reading {
            what: format!("firmware {id}"),
            target,
            version: entry["Version"].as_str().map(str::to_string),
            updateable: entry["Updateable"] != Value::Bool(false),
            checks: vec![
                system_check,
                HealthCheck {
                    name: format!("redfish:firmware:{id}"),
                    ok: entry_health != "Critical",
                    detail: format!("Health {entry_health}, State {state}"),
                },
            ],
        }))
    }

    /// The firmware inventory entry of `component` for the system `system_id`, and the
    /// path it was read from (see the module's docs for how it is found), or why there
    /// is none.
    fn inventory_entry(
        &self,
        device: &Device,
        component: &str,
        system_id: &str,
        system: &Value,
    ) -> Result<Result<(Value, String), String>, PluginError> {
        let service = self.service()?;
        let inventory = service["FirmwareInventory"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/UpdateService/FirmwareInventory")
            .trim_end_matches('/')
            .to_string();
        let named_fact = format!("redfish.firmware.{component}");
        let named = fact(device, &named_fact);
        if let Some(path) = named.filter(|n| n.starts_with('/')) {
            let what = format!("the firmware inventory entry {path} (the fact {named_fact})");
            return Ok(Ok((self.get(path, &what)?.0, path.to_string())));
        }
        let owners = owners(system_id, system);
        let (collection, _) = self.get(&inventory, "the firmware inventory")?;
        let mut found = Vec::new();
        let mut listed = Vec::new();
        let mut unreadable = Vec::new();
        for member in collection["Members"].as_array().into_iter().flatten() {
            let Some(path) = member["@odata.id"].as_str() else {
                continue;
            };
            // One entry a BMC cannot show (stale, mid-update) does not hide the others.
            let entry = match self.get(path, "a firmware inventory entry") {
                Ok((entry, _)) => entry,
                Err(e) => {
                    log(Level::Debug, &format!("{}: {e}", device.id));
                    unreadable.push(path.to_string());
                    continue;
                }
            };
            let id = entry["Id"].as_str().unwrap_or_default();
            // Images kept beside the running one (Dell's `Previous-...` for rollback,
            // `Available-...` staged): not what the system runs.
            if id.starts_with("Previous-") || id.starts_with("Available-") {
                continue;
            }
            let software_id = entry["SoftwareId"].as_str().unwrap_or_default();
            let matches = |name: &str| {
                software_id == name || id == name || id.starts_with(&format!("{name}-"))
            };
            if let Some(name) = named {
                // Named by the operator: wherever the BMC relates it.
                if matches(name) {
                    found.push((entry.clone(), path.to_string()));
                }
                continue;
            }
            if !belongs(&entry, &owners) {
                continue;
            }
            listed.push(if software_id.is_empty() {
                id.to_string()
            } else {
                format!("{id} ({software_id})")
            });
            if software_id == component || id == component {
                found.push((entry.clone(), path.to_string()));
            }
        }
        let unread = if unreadable.is_empty() {
            String::new()
        } else {
            format!(
                "; entries the BMC would not show: {}",
                unreadable.join(", ")
            )
        };
        if found.len() == 1 {
            return Ok(Ok(found.remove(0)));
        }
        if found.len() > 1 {
            let ids: Vec<&str> = found
                .iter()
                .map(|(entry, path)| entry["Id"].as_str().unwrap_or(path))
                .collect();
            return Ok(Err(format!(
                "the BMC of {} has {} firmware inventory entries for `{component}` of {system_id} ({}); set the fact {named_fact} to the id of the one to update{unread}",
                device.id,
                found.len(),
                ids.join(", ")
            )));
        }
        if let Some(name) = named {
            return Ok(Err(format!(
                "the BMC of {} has no firmware inventory entry `{name}` (the fact {named_fact}: an entry's Id, the start of one before a `-`, or its SoftwareId){unread}",
                device.id
            )));
        }
        let bios = bios_component(device);
        let not_bios = if component == bios {
            "the system reports no BiosVersion".to_string()
        } else {
            format!(
                "it is not the BIOS (the component `{bios}`, set by the fact redfish.bios-component)"
            )
        };
        Ok(Err(format!(
            "the BMC of {} has no firmware `{component}` for {system_id}: {not_bios} and no entry of its firmware inventory has it as SoftwareId or Id (the system's entries: {}); set the fact {named_fact} to the entry's id{unread}",
            device.id,
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        )))
    }

    /// Every firmware component of the device's system as the BMC reports it: the BIOS
    /// (`BiosVersion`, as the component `redfish.bios-component`) and each entry of the
    /// firmware inventory that belongs to the system (by its `SoftwareId`, else its
    /// `Id`; kept and staged images left out). Entries the BMC will not show are logged.
    fn scan(&self, device: &Device) -> Result<Vec<Component>, PluginError> {
        let (system_id, system) = self.system(device)?;
        let mut components = Vec::new();
        if let Some(bios) = system["BiosVersion"].as_str() {
            components.push(Component {
                name: bios_component(device).to_string(),
                version: bios.to_string(),
                scheme: None,
                source: None,
            });
        }
        let service = self.service()?;
        let inventory = service["FirmwareInventory"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/UpdateService/FirmwareInventory")
            .to_string();
        let owners = owners(&system_id, &system);
        let (collection, _) = self.get(&inventory, "the firmware inventory")?;
        for member in collection["Members"].as_array().into_iter().flatten() {
            let Some(path) = member["@odata.id"].as_str() else {
                continue;
            };
            let entry = match self.get(path, "a firmware inventory entry") {
                Ok((entry, _)) => entry,
                Err(e) => {
                    log(Level::Warn, &format!("{}: not scanned: {e}", device.id));
                    continue;
                }
            };
            let id = entry["Id"].as_str().unwrap_or_default();
            if id.starts_with("Previous-")
                || id.starts_with("Available-")
                || !belongs(&entry, &owners)
            {
                continue;
            }
            let software_id = entry["SoftwareId"].as_str().unwrap_or_default();
            // The operator's name for it (the fact redfish.firmware.NAME naming the
            // entry), else its SoftwareId, else its Id.
            let named = device.facts.iter().find_map(|(k, v)| {
                let name = k.strip_prefix("redfish.firmware.")?;
                (v == path || v == id || v == software_id || id.starts_with(&format!("{v}-")))
                    .then_some(name)
            });
            let name = named
                .or(Some(software_id).filter(|s| !s.is_empty()))
                .unwrap_or(id);
            let (Some(version), false) = (entry["Version"].as_str(), name.is_empty()) else {
                continue;
            };
            if components.iter().any(|c: &Component| c.name == name) {
                continue;
            }
            components.push(Component {
                name: name.to_string(),
                version: version.to_string(),
                scheme: None,
                source: None,
            });
        }
        Ok(components)
    }

    /// The system's boot state: `BootProgress.LastStateTime` (Redfish 1.13 and later)
    /// changes at every start, where the BMC reports it. A system that is powered off
    /// or still starting (`PowerState` other than `On`, or a `LastState` of the
    /// firmware's start before the OS boots) is not up yet: a transient error, which a
    /// reboot wait keeps asking through.
    fn boot(&self, device: &Device) -> Result<BootState, PluginError> {
        let (system_id, system) = self.system(device)?;
        let power = system["PowerState"].as_str().unwrap_or("On");
        let state = system["BootProgress"]["LastState"].as_str().unwrap_or("");
        if power != "On" || STARTING.contains(&state) {
            return Err(PluginError::Transient(format!(
                "the system {system_id} of {} is not up yet (PowerState {power}, BootProgress.LastState {})",
                device.id,
                if state.is_empty() {
                    "not reported"
                } else {
                    state
                }
            )));
        }
        let boot_id = system["BootProgress"]["LastStateTime"].as_str().map(|t| {
            format!(
                "{}@{t}",
                system["BootProgress"]["LastState"].as_str().unwrap_or("")
            )
        });
        Ok(BootState {
            boot_id,
            booted_at: None,
            reboot_pending: false,
            pending_reasons: Vec::new(),
        })
    }

    /// `ComputerSystem.Reset` with the first of [`RESET_TYPES`] the BMC allows
    /// (`ResetType@Redfish.AllowableValues`; GracefulRestart when it lists none),
    /// following the task the BMC returns.
    fn reset(&self, device: &Device) -> Result<String, PluginError> {
        let (system_id, system) = self.system(device)?;
        let action = &system["Actions"]["#ComputerSystem.Reset"];
        let Some(target) = action["target"].as_str() else {
            return Err(PluginError::Permanent(format!(
                "the BMC of {} offers no ComputerSystem.Reset action for {system_id}",
                device.id
            )));
        };
        let allowed: Vec<&str> = action["ResetType@Redfish.AllowableValues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let Some(kind) = RESET_TYPES
            .iter()
            .find(|t| allowed.is_empty() || allowed.contains(t))
        else {
            return Err(PluginError::Permanent(format!(
                "the BMC of {} allows no restart of {system_id} (ResetType@Redfish.AllowableValues: {})",
                device.id,
                allowed.join(", ")
            )));
        };
        let response = self.send(Method::Post, target, Some(&json!({ "ResetType": kind })))?;
        if !matches!(response.status, 200 | 202 | 204) {
            return Err(refusal(
                &self.device,
                &response,
                &format!("resetting {system_id} ({kind})"),
            ));
        }
        let mut said = format!("ComputerSystem.Reset {kind} of {system_id}");
        if response.status == 202
            && let Some(task) = response.header("location").map(str::to_string)
        {
            said.push_str(&format!(": {}", self.follow_task(&task)?));
        }
        Ok(said)
    }

    /// Follows a task until it ends. `Ok` when it completed well.
    fn follow_task(&self, location: &str) -> Result<String, PluginError> {
        let started = clock::now();
        let poll_ms = settings::get("task-poll-ms")
            .and_then(|ms| ms.trim().parse().ok())
            .unwrap_or(TASK_POLL_MS);
        loop {
            let response = self.send(Method::Get, location, None)?;
            // A task monitor answers 202 while the task runs; the task resource 200.
            if !matches!(response.status, 200 | 202) {
                return Err(refusal(
                    &self.device,
                    &response,
                    "following the update task",
                ));
            }
            let task: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            let state = task["TaskState"]
                .as_str()
                .unwrap_or(if response.status == 200 {
                    "Completed"
                } else {
                    "Running"
                });
            let status = task["TaskStatus"].as_str().unwrap_or("OK");
            if TERMINAL.contains(&state) {
                if state == "Completed" && matches!(status, "OK" | "Warning") {
                    return Ok(format!("task {location}: {state}, {status}"));
                }
                return Err(PluginError::Permanent(format!(
                    "the firmware update task {location} on the BMC of {} ended {state} ({status}){}",
                    self.device,
                    messages(&task["Messages"])
                )));
            }
            if clock::now() - started > TASK_DEADLINE_SECONDS {
                return Err(PluginError::Transient(format!(
                    "the firmware update task {location} on the BMC of {} is still {state} after {} minutes",
                    self.device,
                    TASK_DEADLINE_SECONDS / 60
                )));
            }
            if let Some(percent) = task["PercentComplete"].as_u64() {
                log(
                    Level::Debug,
                    &format!("{}: {location} {state}, {percent}%", self.device),
                );
            }
            clock::sleep(poll_ms);
        }
    }

    /// Posts SimpleUpdate for `target` and follows the task the BMC answers with. With
    /// `staged` (the patch needs a restart anyway) and a BMC that can apply updates at
    /// the next reset, asks for that (`@Redfish.OperationApplyTime: OnReset`): the
    /// engine resets the system once after its last such update.
    fn start_update(
        &self,
        device: &Device,
        component: &str,
        target: &str,
        image: &str,
        version: &str,
        staged: bool,
    ) -> Result<String, PluginError> {
        check_image(image)?;
        let UpdateAction {
            target: action,
            protocols,
            on_reset,
        } = self.update_service()?;
        // Remembered before it is posted: a host stop from here on is recovered from.
        let key = task_key(device, component);
        remember_task(&key, version, "")?;
        let mut request = json!({ "ImageURI": image, "Targets": [target] });
        let scheme = image
            .split("://")
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if protocols.contains(&scheme) {
            request["TransferProtocol"] = Value::String(scheme);
        }
        if staged && on_reset {
            request["@Redfish.OperationApplyTime"] = Value::String("OnReset".into());
        }
        let response = self.send(Method::Post, &action, Some(&request))?;
        if !matches!(response.status, 200 | 201 | 202 | 204) {
            forget_task(&key)?;
            return Err(refusal(
                device.id.as_str(),
                &response,
                "starting the firmware update",
            ));
        }
        let task = response.header("location").map(str::to_string).or_else(|| {
            serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|b| b["@odata.id"].as_str().map(str::to_string))
        });
        match task {
            Some(task) => {
                remember_task(&key, version, &task)?;
                self.follow(&key, &task)
            }
            None => {
                forget_task(&key)?;
                Ok(format!("SimpleUpdate answered {}", response.status))
            }
        }
    }

    /// A running task of the BMC that updates `target` with `image`, if there is one
    /// (its `Payload` holds the request that started it).
    fn find_task(&self, target: &str, image: &str) -> Result<Option<String>, PluginError> {
        let (service, _) = self.get(&format!("{SERVICE_ROOT}TaskService"), "the task service")?;
        let tasks = service["Tasks"]["@odata.id"]
            .as_str()
            .unwrap_or("/redfish/v1/TaskService/Tasks")
            .to_string();
        let (collection, _) = self.get(&tasks, "the tasks")?;
        let members = collection["Members"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Newest last, usually: look from the end.
        for member in members.iter().rev() {
            let Some(path) = member["@odata.id"].as_str() else {
                continue;
            };
            let response = self.send(Method::Get, path, None)?;
            let Ok(task) = serde_json::from_slice::<Value>(&response.body) else {
                continue;
            };
            let state = task["TaskState"].as_str().unwrap_or_default();
            let request: Value = task["Payload"]["JsonBody"]
                .as_str()
                .and_then(|body| serde_json::from_str(body).ok())
                .unwrap_or(Value::Null);
            let ours = request["ImageURI"].as_str() == Some(image)
                && request["Targets"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(target)));
            if ours && !TERMINAL.contains(&state) {
                return Ok(Some(path.to_string()));
            }
        }
        Ok(None)
    }

    /// Follows a task this plugin started (remembered under `key`); forgets it once it
    /// has ended (well or not).
    fn follow(&self, key: &str, task: &str) -> Result<String, PluginError> {
        let result = self.follow_task(task);
        if !matches!(result, Err(PluginError::Transient(_))) {
            forget_task(key)?;
        }
        result
    }

    /// Flashes `image` on the device's component and reads the version back.
    fn flash(
        &self,
        device: &Device,
        component: &str,
        image: &str,
        version: &str,
        reboot: bool,
    ) -> Result<InstallOutcome, PluginError> {
        let key = task_key(device, component);
        let (reading, started) = match (self.read(device, component), recall_task(&key, version)?) {
            (Ok(Ok(reading)), started) => (reading, started),
            // The BMC cannot show the component now (busy with the update this plugin
            // started before the host stopped, say): follow that update first.
            (_, Some(Started::Task(task))) => {
                let detail = self.resume(device, &key, &task)?;
                return self.installed(device, component, version, reboot, detail);
            }
            (Ok(Err(why)), _) => return Err(PluginError::Permanent(why)),
            (Err(e), _) => return Err(e),
        };
        if reading.version.as_deref() == Some(version) {
            // Called again after a restart: already done.
            forget_task(&key)?;
            return Ok(InstallOutcome {
                installed_version: version.to_string(),
                reboot_pending: false,
                detail: "already installed".into(),
            });
        }
        if !reading.updateable {
            return Err(PluginError::Permanent(not_updateable(device, &reading)));
        }
        let task = match started {
            Some(Started::Task(task)) => Some(task),
            // Posted when the host stopped, the answer not recorded: ask the BMC.
            Some(Started::Posted) => match self.find_task(&reading.target, image) {
                Ok(Some(task)) => {
                    remember_task(&key, version, &task)?;
                    Some(task)
                }
                Ok(None) => None,
                Err(e) => {
                    log(
                        Level::Warn,
                        &format!(
                            "{}: cannot tell whether the update posted before the host stopped is running ({e}); posting it",
                            device.id
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let detail = match task {
            Some(task) => self.resume(device, &key, &task)?,
            None => {
                self.start_update(device, component, &reading.target, image, version, reboot)?
            }
        };
        self.installed(device, component, version, reboot, detail)
    }

    /// Follows the task `key` remembers, started before the host stopped.
    fn resume(&self, device: &Device, key: &str, task: &str) -> Result<String, PluginError> {
        log(
            Level::Info,
            &format!(
                "{}: following {task}, started before the host stopped",
                device.id
            ),
        );
        self.follow(key, task)
    }

    /// Reads the component back after an update to `version` (`detail` says how it
    /// went).
    fn installed(
        &self,
        device: &Device,
        component: &str,
        version: &str,
        reboot: bool,
        detail: String,
    ) -> Result<InstallOutcome, PluginError> {
        let after = self
            .read(device, component)?
            .map_err(PluginError::Permanent)?;
        let installed = after.version.unwrap_or_default();
        // Another version read back is a staged update when the patch needs a restart,
        // or when the BMC stages updates until a reset (it lists OnReset): iDRAC and iLO
        // stage BIOS images whatever the request asked.
        let staged = installed != version
            && (reboot || self.update_service().is_ok_and(|action| action.on_reset));
        if installed != version && !staged {
            return Err(PluginError::Permanent(format!(
                "the BMC of {} reports {} version {installed} after the update to {version} ({detail})",
                device.id, after.what
            )));
        }
        log(
            Level::Info,
            &format!("{}: {} {installed} ({detail})", device.id, after.what),
        );
        Ok(InstallOutcome {
            reboot_pending: installed != version,
            installed_version: installed,
            detail,
        })
    }
}

/// The update service's SimpleUpdate action.
struct UpdateAction {
    /// Where it is posted.
    target: String,
    /// `TransferProtocol@Redfish.AllowableValues` (empty: the BMC does not say).
    protocols: Vec<String>,
    /// Whether the BMC can stage an update until the system's next reset.
    on_reset: bool,
}

/// A component of a device's system as its BMC reports it.
struct Reading {
    /// What it is, for messages: `BIOS`, `firmware NIC-1`.
    what: String,
    /// What SimpleUpdate's `Targets` names to update it: the system, or the firmware
    /// inventory entry (their `@odata.id`).
    target: String,
    version: Option<String>,
    /// False when the BMC marks the entry `Updateable: false`.
    updateable: bool,
    /// The system's health, and the entry's.
    checks: Vec<HealthCheck>,
}

fn not_updateable(device: &Device, reading: &Reading) -> String {
    format!(
        "the BMC of {} marks its {} ({}) as not updateable (Updateable: false)",
        device.id, reading.what, reading.target
    )
}

/// Where the task updating `component` of `device` is remembered.
fn task_key(device: &Device, component: &str) -> String {
    format!("task/{}/{component}", device.id)
}

/// An update this plugin started for a device, as remembered.
enum Started {
    /// The BMC answered with this task.
    Task(String),
    /// Posted, or about to be, when the host stopped: the BMC may have a task for it.
    Posted,
}

/// The update this plugin started to bring `device` to `version`, if one is remembered.
/// Without the `kv` capability the plugin remembers nothing (and says so).
fn recall_task(key: &str, version: &str) -> Result<Option<Started>, PluginError> {
    let value = match kv::get(key) {
        Ok(value) => value,
        Err(PluginError::Denied(why)) => {
            log(
                Level::Warn,
                &format!("updates are not remembered across restarts: {why}"),
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
    Ok(value.and_then(|v| {
        let (for_version, task) = v.split_once('\n')?;
        (for_version == version).then(|| match task {
            "" => Started::Posted,
            task => Started::Task(task.to_string()),
        })
    }))
}

/// Remembers the update to `version`: its task, or (empty) that it is being posted.
fn remember_task(key: &str, version: &str, task: &str) -> Result<(), PluginError> {
    match kv::set(key, format!("{version}\n{task}").as_bytes()) {
        Err(PluginError::Denied(_)) => Ok(()),
        other => other,
    }
}

fn forget_task(key: &str) -> Result<(), PluginError> {
    match kv::delete(key) {
        Err(PluginError::Denied(_)) => Ok(()),
        other => other,
    }
}

/// `scheme://authority` of an http(s) URL.
fn origin(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return None;
    }
    Some(&url[..url.len() - rest.len() + authority.len()])
}

fn check_image(image: &str) -> Result<(), PluginError> {
    if origin(image).is_none() {
        return Err(PluginError::Permanent(format!(
            "the firmware image must be an http:// or https:// URL the BMC can fetch, not `{image}`"
        )));
    }
    Ok(())
}

/// `: message; message` from a Redfish `Messages` list, or nothing.
fn messages(list: &Value) -> String {
    let texts: Vec<&str> = list
        .as_array()
        .map(|l| l.iter().filter_map(|m| m["Message"].as_str()).collect())
        .unwrap_or_default();
    if texts.is_empty() {
        String::new()
    } else {
        format!(": {}", texts.join("; "))
    }
}

/// The error for a response that refused what we asked, with the BMC's own words.
fn refusal(device: &str, response: &Response, doing: &str) -> PluginError {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let error = &body["error"];
    let mut said = error["message"].as_str().unwrap_or_default().to_string();
    let extended = messages(&error["@Message.ExtendedInfo"]);
    if !extended.is_empty() {
        said.push_str(&extended);
    }
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    let status = response.status;
    let text = format!(
        "{doing} on the BMC of {device}: {} answered HTTP {status}{said}",
        response.url
    );
    match status {
        401 | 403 => PluginError::Permanent(format!(
            "{text} (the BMC refused the credentials: check the device's [credentials] in the operator's config)"
        )),
        429 | 500..=599 => PluginError::Transient(text),
        _ => PluginError::Permanent(text),
    }
}

/// Where the system's own parts live (the system and its chassis): firmware entries
/// related to these belong to it.
fn owners(system_id: &str, system: &Value) -> Vec<String> {
    let mut owners = vec![system_id.trim_end_matches('/').to_string()];
    owners.extend(
        system["Links"]["Chassis"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["@odata.id"].as_str())
            .map(|c| c.trim_end_matches('/').to_string()),
    );
    owners
}

/// Whether a firmware inventory entry belongs to the system of `owners`: its
/// `RelatedItem` is under one of them, or names nothing.
fn belongs(entry: &Value, owners: &[String]) -> bool {
    let related: Vec<&str> = entry["RelatedItem"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["@odata.id"].as_str())
        .collect();
    related.is_empty()
        || related.iter().any(|item| {
            let item = item.trim_end_matches('/');
            owners
                .iter()
                .any(|o| item == o || item.starts_with(&format!("{o}/")))
        })
}

/// Reset types to restart a system with, in the order tried: a clean restart first.
const RESET_TYPES: &[&str] = &["GracefulRestart", "ForceRestart", "PowerCycle"];

/// The component of `device` this plugin updates.
fn bios_component(device: &Device) -> &str {
    fact(device, "redfish.bios-component").unwrap_or("bios")
}

impl Guest for RedfishFirmware {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "redfish-firmware".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "updates server firmware (BIOS, firmware inventory) through the BMC with Redfish SimpleUpdate".into(),
        }
    }

    fn preflight(device: Device, patch: Patch) -> Result<Readiness, PluginError> {
        let bmc = Bmc::of(&device)?;
        let reading = match bmc.read(&device, &patch.component)? {
            Ok(reading) => reading,
            Err(why) => return Ok(Readiness::Blocked(why)),
        };
        if reading.version.as_deref() == Some(patch.fixed_version.as_str()) {
            return Ok(Readiness::AlreadyInstalled(patch.fixed_version));
        }
        if !reading.updateable {
            return Ok(Readiness::Blocked(not_updateable(&device, &reading)));
        }
        if let Some(check) = reading.checks.iter().find(|c| !c.ok) {
            return Ok(Readiness::Blocked(format!(
                "the BMC reports {} as Critical ({}: {})",
                device.id, check.name, check.detail
            )));
        }
        if let Err(PluginError::Permanent(why)) = check_image(&patch.artifact.url) {
            return Ok(Readiness::Blocked(why));
        }
        bmc.update_service()?;
        Ok(Readiness::Ready)
    }

    fn install(device: Device, patch: Patch) -> Result<InstallOutcome, PluginError> {
        Bmc::of(&device)?.flash(
            &device,
            &patch.component,
            &patch.artifact.url,
            &patch.fixed_version,
            patch.reboot_required,
        )
    }

    fn verify(device: Device, patch: Patch) -> Result<VerifyReport, PluginError> {
        let reading = Bmc::of(&device)?
            .read(&device, &patch.component)?
            .map_err(PluginError::Permanent)?;
        Ok(VerifyReport {
            installed_version: reading.version,
            health: HealthReport {
                healthy: reading.checks.iter().all(|c| c.ok),
                checks: reading.checks,
            },
        })
    }

    fn rollback(
        device: Device,
        patch: Patch,
        target: RollbackTarget,
    ) -> Result<InstallOutcome, PluginError> {
        let bmc = Bmc::of(&device)?;
        let reading = bmc
            .read(&device, &patch.component)?
            .map_err(PluginError::Permanent)?;
        if reading.version.as_deref() == Some(target.version.as_str()) {
            return Ok(InstallOutcome {
                installed_version: target.version,
                reboot_pending: false,
                detail: "already at the rollback version".into(),
            });
        }
        let Some(image) = target.artifact else {
            return Err(PluginError::Permanent(format!(
                "no firmware image of {} {} is known to roll {} back to (the catalog must publish that release)",
                patch.component, target.version, device.id
            )));
        };
        bmc.flash(
            &device,
            &patch.component,
            &image.url,
            &target.version,
            patch.reboot_required,
        )
    }

    fn scan(device: Device) -> Result<DeviceScan, PluginError> {
        let bmc = Bmc::of(&device)?;
        Ok(DeviceScan {
            components: bmc.scan(&device)?,
            os: None,
            boot: bmc.boot(&device)?,
            facts: Vec::new(),
        })
    }

    fn boot_state(device: Device) -> Result<BootState, PluginError> {
        Bmc::of(&device)?.boot(&device)
    }

    fn reboot(device: Device) -> Result<String, PluginError> {
        Bmc::of(&device)?.reset(&device)
    }
}

export!(RedfishFirmware);
