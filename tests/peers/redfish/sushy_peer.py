#!/usr/bin/env python3
"""Redfish BMC peer for Ringleader's integration tests.

Runs the sushy-tools Redfish emulator (sushy-tools 2.2.0) in-process on top of
libvirt's built-in test hypervisor (test:///default), with N test domains, each
of which shows up as one Redfish ComputerSystem.

    VENV=/var/cache/ringleader-peers/redfish-venv
    bash tests/peers/redfish/install.sh "$VENV"
    "$VENV/bin/python" tests/peers/redfish/sushy_peer.py --port 8000 --systems 4

Contract with the test harness:
  * stdout gets exactly one line, "listening on http://127.0.0.1:PORT", flushed
    as soon as the listening socket is bound (connections are accepted from
    then on). With --port 0 the kernel picks a free port and PORT is that port.
  * stderr is quiet unless something goes wrong (--verbose adds sushy's own
    log and a per-request access log there).
  * SIGTERM or SIGINT: stop serving, close the libvirt connection, exit 0.
  * Any start-up error: message on stderr, exit code 2, nothing on stdout.

Systems: PREFIX-1 .. PREFIX-N (default node-1 .. node-4), each powered on,
with UUID = uuid5(NAMESPACE_URL, "ringleader-redfish-peer/<name>") so tests can
compute it. Redfish lists systems by UUID (/redfish/v1/Systems/<uuid>);
/redfish/v1/Systems/<name> answers 307 to the UUID URL. libvirt's own default
domain "test" is removed unless --keep-default-domain is given.

Why a wrapper instead of plain `sushy-emulator --libvirt-uri test:///default`:
the test driver keeps its state (domains, and the BIOS versions sushy stores in
domain metadata) only while some connection in this process is open; sushy
opens and closes a connection per operation. Holding one connection for the
whole lifetime keeps the domains (and their BiosVersion) stable.

Two changes to sushy's SimpleUpdate, both to behave like a real BMC (see NOTES.md):
  * updates are serialized (one lock for the whole emulator): sushy reads, bumps
    and writes the domain's metadata without a lock, and loses updates when
    several arrive at once;
  * the system gets the version the image is: the last dotted number in the
    ImageURI's file name (`.../sushy-bios-1.1.0.bin` -> 1.1.0), so that going
    back to an older image really goes back. An image name without a version
    keeps sushy's own behaviour (the second number goes up by one).
Firmware inventory (what sushy links to but does not serve): the update service's
FirmwareInventory lists, for each system, its network adapter's firmware `NIC-<name>`
(SoftwareId "nic", RelatedItem the system) and the BMC's own `BMC` (SoftwareId
"bmc"), all at version 1.0.0. SimpleUpdate with an entry's URI as its target
updates that entry's Version the same way (image version, serialized, tasks), and
lists the version it replaced as `Previous-<id>` (same SoftwareId), as Dell's
iDRAC does.

Reboots (what sushy lacks, see NOTES.md): every system shows BootProgress
(LastState OSRunning, LastStateTime its last start), and ComputerSystem.Reset
restarts it: a new LastStateTime, and with --reset-seconds S, S seconds in its POST
first (LastState PrimaryProcessorInitializationStarted); --stuck-systems names
systems that never come back. With --apply-on-reset, BIOS updates are staged until
the system's next reset, as iDRAC and iLO do: SimpleUpdate succeeds, BiosVersion
stays the old one, and the reset applies the image (SimpleUpdate lists OnReset in
its @Redfish.OperationApplyTimeSupport).

With --update-log FILE, every applied update appends one JSON line
{"system": NAME, "from": OLD, "to": NEW, "image": URI} (a firmware inventory
entry: {"item": ID, "component": SOFTWAREID, ...} instead of "system") to FILE
(flushed before the response is sent): what tests count installs on the peer's
side with. A staged BIOS update appends {"system": NAME, "from": OLD, "staged": URI}
when it is staged, and its usual line when the reset applies it.

Optional HTTP basic auth: --htpasswd FILE (bcrypt entries only, e.g. made with
`htpasswd -nbB user pass` or the bcrypt module in the venv; see NOTES.md).
/redfish/v1 itself stays anonymous, everything else then needs credentials.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid

LIBVIRT_URI = "test:///default"
UUID_NAMESPACE_PREFIX = "ringleader-redfish-peer/"

DOMAIN_XML = """\
<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/guest/{name}.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:a0:{hi:02x}:{lo:02x}'/>
      <source network='default'/>
    </interface>
  </devices>
</domain>
"""


def die(msg):
    print(f"sushy_peer: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def system_uuid(name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, UUID_NAMESPACE_PREFIX + name))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True,
                   help="TCP port on 127.0.0.1 (0: let the kernel choose)")
    p.add_argument("--systems", type=int, default=4,
                   help="number of Redfish systems (libvirt test domains), default 4")
    p.add_argument("--prefix", default="node",
                   help="system names are PREFIX-1..PREFIX-N (default: node). Must not "
                        "contain 'Manager': sushy rejects such SimpleUpdate targets")
    p.add_argument("--keep-default-domain", action="store_true",
                   help="also keep libvirt's built-in domain 'test' (then N+1 systems)")
    p.add_argument("--htpasswd", metavar="FILE",
                   help="enable HTTP basic auth with this htpasswd file (bcrypt only)")
    p.add_argument("--update-log", metavar="FILE",
                   help="append one JSON line per applied firmware update to FILE")
    p.add_argument("--task-seconds", type=float, default=0, metavar="S",
                   help="answer SimpleUpdate with 202 and a task that runs for S seconds "
                        "(whether or not anyone polls it), then applies the update "
                        "(default 0: sushy's own 204, applied at once, static task 42)")
    p.add_argument("--fail-images", metavar="TEXT",
                   help="with --task-seconds: an image whose URI contains TEXT fails, its "
                        "task ends in Exception and nothing changes")
    p.add_argument("--apply-on-reset", action="store_true",
                   help="stage BIOS updates until the system's next ComputerSystem.Reset, "
                        "as iDRAC and iLO do (SimpleUpdate then lists OnReset in its "
                        "@Redfish.OperationApplyTimeSupport)")
    p.add_argument("--reset-seconds", type=float, default=0, metavar="S",
                   help="after a reset, the system is in its POST for S seconds "
                        "(BootProgress.LastState PrimaryProcessorInitializationStarted) "
                        "before it runs again with a new BootProgress.LastStateTime")
    p.add_argument("--stuck-systems", metavar="NAMES", default="",
                   help="comma-separated system names that never come back from a reset "
                        "(they stay in their POST)")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="serve HTTPS with this certificate (PEM); needs --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help="make the folder of sushy's SQLite state inside DIR (default: the "
                        "system's temp dir); it is removed at exit")
    p.add_argument("--verbose", action="store_true",
                   help="sushy info log and request access log on stderr")
    a = p.parse_args(argv)
    if not 0 <= a.port <= 65535:
        p.error("--port must be 0..65535")
    if not 1 <= a.systems <= 250:
        p.error("--systems must be 1..250")
    if "manager" in a.prefix.lower() or "/" in a.prefix or not a.prefix:
        p.error("--prefix must be non-empty and contain neither '/' nor 'Manager'")
    if a.task_seconds < 0:
        p.error("--task-seconds must be 0 or more")
    if a.fail_images and not a.task_seconds:
        p.error("--fail-images needs --task-seconds")
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if a.htpasswd and not os.path.isfile(a.htpasswd):
        p.error(f"--htpasswd file not found: {a.htpasswd}")
    return a


def define_domains(conn, args):
    import libvirt

    if not args.keep_default_domain:
        for dom in conn.listAllDomains():
            if dom.name() == "test":
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    names = []
    for i in range(1, args.systems + 1):
        name = f"{args.prefix}-{i}"
        xml = DOMAIN_XML.format(name=name, uuid=system_uuid(name),
                                hi=(i >> 8) & 0xFF, lo=i & 0xFF)
        try:
            dom = conn.defineXML(xml)
            dom.create()  # power on, like a racked server
        except libvirt.libvirtError as e:
            die(f"defining test domain {name} failed: {e}")
        names.append(name)
    return names


IMAGE_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def image_version(uri):
    """The last dotted number in the image's file name, or None."""
    name = str(uri).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    found = IMAGE_VERSION.findall(name)
    return found[-1].rstrip(".") if found else None


INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"


def firmware_inventory(names):
    """The firmware inventory entries: id -> entry (see the module's docs)."""
    entries = {"BMC": {"name": "BMC firmware", "software_id": "bmc", "version": "1.0.0",
                       "system": None}}
    for name in names:
        entries[f"NIC-{name}"] = {"name": f"Network adapter firmware of {name}",
                                  "software_id": "nic", "version": "1.0.0",
                                  "system": system_uuid(name)}
    return entries


def install_update_hooks(app, update_log, inventory, task_seconds=0, fail_images=None,
                         apply_on_reset=False, reset_seconds=0, stuck_systems=()):
    """Wraps sushy's SimpleUpdate view: one update at a time, the image's version;
    with task_seconds, updates run as tasks (a real BMC's 202 and task monitor).
    Serves the firmware inventory and updates its entries. Adds BootProgress to the
    systems and wraps ComputerSystem.Reset (see install_reset_hooks)."""
    import flask

    endpoint = "UpdateService.update_service_simple_update"
    original = app.view_functions[endpoint]
    lock = threading.Lock()
    tasks = {}
    # BIOS updates waiting for their system's reset (--apply-on-reset): uuid -> image.
    staged = {}

    def json_response(body, status=200):
        return flask.Response(json.dumps(body), status, content_type="application/json")

    def entry_body(item_id):
        entry = inventory[item_id]
        body = {
            "@odata.type": "#SoftwareInventory.v1_10_0.SoftwareInventory",
            "@odata.id": f"{INVENTORY}/{item_id}",
            "Id": item_id,
            "Name": entry["name"],
            "SoftwareId": entry["software_id"],
            "Version": entry["version"],
            "Updateable": True,
            "Status": {"State": "Enabled", "Health": "OK"},
        }
        if entry["system"]:
            body["RelatedItem"] = [{"@odata.id": f"/redfish/v1/Systems/{entry['system']}"}]
        return body

    def inventory_collection():
        with lock:
            members = [{"@odata.id": f"{INVENTORY}/{item_id}"} for item_id in inventory]
        return json_response({
            "@odata.type": "#SoftwareInventoryCollection.SoftwareInventoryCollection",
            "@odata.id": INVENTORY,
            "Name": "Firmware Inventory",
            "Members@odata.count": len(members),
            "Members": members,
        })

    def inventory_entry(item_id):
        with lock:
            if item_id not in inventory:
                return json_response({"error": {
                    "code": "Base.1.0.ResourceMissingAtURI",
                    "message": f"no firmware inventory entry {item_id}"}}, 404)
            return json_response(entry_body(item_id))

    app.add_url_rule(INVENTORY, "ringleader_inventory", inventory_collection,
                     methods=["GET"])
    app.add_url_rule(f"{INVENTORY}/<item_id>", "ringleader_inventory_entry",
                     inventory_entry, methods=["GET"])

    def version_of(key):
        kind, name = key
        if kind == "item":
            return inventory[name]["version"]
        return app.systems.get_versions(name).get("BiosVersion")

    def apply(key, old, image, staging=True):
        """Gives the target the image's version (or sushy's bump); logs the update.
        With --apply-on-reset, a system's BIOS image is staged instead, until the
        system's next reset (which calls this again with staging=False)."""
        kind, name = key
        if staging and apply_on_reset and kind == "system":
            # sushy's own view may have bumped the version already: undo that.
            app.systems.set_versions(name, {"BiosVersion": old})
            staged[name] = image
            if update_log:
                line = json.dumps({"system": app.systems.name(name), "from": old,
                                   "staged": image})
                with open(update_log, "a") as f:
                    f.write(line + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            return
        wanted = image_version(image)
        if wanted is None:
            parts = str(old).split(".")
            parts[1] = str(int(parts[1]) + 1)
            wanted = ".".join(parts)
        if kind == "item":
            # Like Dell's iDRAC, the image replaced stays listed as `Previous-<id>`
            # (same SoftwareId), for a rollback on the BMC's side.
            if not name.startswith("Previous-"):
                inventory[f"Previous-{name}"] = {**inventory[name], "version": old,
                                                 "name": "Previous " + inventory[name]["name"]}
            inventory[name]["version"] = wanted
            logged = {"item": name, "component": inventory[name]["software_id"]}
        else:
            app.systems.set_versions(name, {"BiosVersion": wanted})
            logged = {"system": app.systems.name(name)}
        new = version_of(key)
        if update_log:
            line = json.dumps({**logged, "from": old, "to": new, "image": image})
            with open(update_log, "a") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())

    def task_body(task_id, task):
        body = {
            "@odata.type": "#Task.v1_4_3.Task",
            "@odata.id": f"/redfish/v1/TaskService/Tasks/{task_id}",
            "Id": task_id,
            "Name": f"Firmware update {task_id}",
            "TaskState": task["state"],
            "TaskStatus": task["status"],
            "PercentComplete": task["percent"],
            "Messages": task["messages"],
            # What started it, as Redfish's Task.Payload says: how a client that lost
            # track of its request finds its task again.
            "Payload": {
                "HttpOperation": "POST",
                "TargetUri": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
                "JsonBody": task["request"],
            },
        }
        return body

    def task_collection():
        with lock:
            members = [{"@odata.id": f"/redfish/v1/TaskService/Tasks/{task_id}"}
                       for task_id in tasks]
        body = {
            "@odata.type": "#TaskCollection.TaskCollection",
            "@odata.id": "/redfish/v1/TaskService/Tasks",
            "Name": "Task Collection",
            "Members@odata.count": len(members),
            "Members": members,
        }
        return flask.Response(json.dumps(body), 200, content_type="application/json")

    def finish(task_id):
        """A task's end, task_seconds after it started: the update, or its failure."""
        with lock:
            task = tasks[task_id]
            if fail_images and fail_images in str(task["image"]):
                task.update(state="Exception", status="Critical", percent=100, messages=[
                    {"MessageId": "Update.1.0.VerificationFailed",
                     "Message": f"the image {task['image']} failed verification"}])
            else:
                for key, old in task["before"]:
                    apply(key, old, task["image"])
                task.update(state="Completed", status="OK", percent=100, messages=[
                    {"MessageId": "Update.1.0.UpdateSuccessful",
                     "Message": "the update was applied"}])

    def task_view(task_id):
        import time
        with lock:
            task = tasks.get(task_id)
            if task is None:
                body = {"error": {"code": "Base.1.0.ResourceMissingAtURI",
                                  "message": f"no task {task_id}"}}
                return flask.Response(json.dumps(body), 404, content_type="application/json")
            if task["state"] == "Running":
                elapsed = time.monotonic() - task["started"]
                task["percent"] = min(99, int(100 * elapsed / task_seconds))
            status = 202 if task["state"] == "Running" else 200
            return flask.Response(json.dumps(task_body(task_id, task)), status,
                                  content_type="application/json")

    if task_seconds:
        app.add_url_rule("/redfish/v1/TaskService/Tasks/<task_id>", "ringleader_task",
                         task_view, methods=["GET"])
        app.add_url_rule("/redfish/v1/TaskService/Tasks", "ringleader_tasks",
                         task_collection, methods=["GET"])

    def target_of(target):
        """("item", id) for a firmware inventory entry, ("system", uuid) for a system;
        raises for an unknown target."""
        from sushy_tools import error
        path = str(target).rstrip("/")
        name = path.rsplit("/", 1)[-1]
        if path.startswith(INVENTORY + "/"):
            if name not in inventory:
                raise KeyError(name)
            return ("item", name)
        try:
            return ("system", app.systems.uuid(name))
        except error.AliasAccessError as exc:
            return ("system", str(exc))

    def simple_update(*args, **kwargs):
        with lock:
            body = flask.request.get_json(silent=True) or {}
            targets = body.get("Targets") if isinstance(body, dict) else None
            before = []
            if isinstance(targets, list):
                for t in targets:
                    try:
                        key = target_of(t)
                        before.append((key, version_of(key)))
                    except Exception:
                        if str(t).startswith(INVENTORY + "/"):
                            return json_response({"error": {
                                "code": "Base.1.0.ActionParameterValueError",
                                "message": f"no firmware inventory entry {t}"}}, 400)
                        # sushy's own view reports unknown systems
            image = body.get("ImageURI") if isinstance(body, dict) else None
            if task_seconds and image and before and len(before) == len(targets):
                import time
                task_id = f"rl{len(tasks) + 1}"
                tasks[task_id] = {"before": before, "image": image, "state": "Running",
                                  "status": "OK", "percent": 0, "messages": [],
                                  "started": time.monotonic(),
                                  "request": json.dumps(body)}
                timer = threading.Timer(task_seconds, finish, args=(task_id,))
                timer.daemon = True
                timer.start()
                response = flask.Response(json.dumps(task_body(task_id, tasks[task_id])), 202,
                                          content_type="application/json")
                response.headers["Location"] = f"/redfish/v1/TaskService/Tasks/{task_id}"
                return response
            if (image and before and len(before) == len(targets)
                    and any(kind == "item" for (kind, _), _ in before)):
                # Firmware inventory entries: sushy knows only systems.
                for key, old in before:
                    apply(key, old, image)
                return flask.Response("", 204)
            # sushy's own checks and errors; on success its update is replaced by ours.
            response = original(*args, **kwargs)
            if response.status_code != 204:
                return response
            for key, old in before:
                apply(key, old, image)
            return response

    app.view_functions[endpoint] = simple_update
    install_reset_hooks(app, lock, staged, apply, version_of, apply_on_reset,
                        reset_seconds, stuck_systems)


def install_reset_hooks(app, lock, staged, apply, version_of, apply_on_reset,
                        reset_seconds, stuck_systems):
    """What sushy lacks for reboots (see NOTES.md):
      * every system shows BootProgress (Redfish 1.13): LastState OSRunning with a
        LastStateTime that a reset changes, the boot id a client compares;
      * ComputerSystem.Reset applies the BIOS images staged for the system, then puts
        it in its POST for reset_seconds (PowerState On, LastState
        PrimaryProcessorInitializationStarted) before it runs again; a system named in
        stuck_systems never leaves its POST;
      * with apply_on_reset, SimpleUpdate advertises @Redfish.OperationApplyTimeSupport
        with OnReset."""
    import datetime
    import time

    import flask

    started = datetime.datetime.now(datetime.timezone.utc)
    # uuid -> (monotonic time the POST ends or None for never, boot time)
    boots = {}

    def boot_of(uuid):
        ends, at = boots.get(uuid, (0, started))
        running = ends is not None and time.monotonic() >= ends
        return running, at

    def as_response(result):
        return flask.make_response(result)

    system_view = app.view_functions["system_resource"]

    def system_resource(*args, **kwargs):
        response = as_response(system_view(*args, **kwargs))
        if flask.request.method != "GET" or response.status_code != 200:
            return response
        try:
            body = json.loads(response.get_data())
        except ValueError:
            return response
        with lock:
            running, at = boot_of(str(body.get("UUID") or body.get("Id")))
        body["BootProgress"] = {
            "LastState": "OSRunning" if running else "PrimaryProcessorInitializationStarted",
            "LastStateTime": at.isoformat(timespec="microseconds"),
        }
        response.set_data(json.dumps(body))
        return response

    app.view_functions["system_resource"] = system_resource

    reset_view = app.view_functions["system_reset_action"]

    def system_reset(identity, *args, **kwargs):
        response = as_response(reset_view(identity, *args, **kwargs))
        if response.status_code not in (200, 202, 204):
            return response
        reset_type = (flask.request.get_json(silent=True) or {}).get("ResetType")
        if reset_type in ("ForceOff", "GracefulShutdown", "PushPowerButton", "Nmi"):
            return response
        try:
            uuid = app.systems.uuid(identity)
        except Exception as exc:  # sushy's alias error carries the uuid
            uuid = str(exc)
        with lock:
            image = staged.pop(uuid, None)
            if image is not None:
                key = ("system", uuid)
                apply(key, version_of(key), image, staging=False)
            name = app.systems.name(uuid)
            ends = None if name in stuck_systems else time.monotonic() + reset_seconds
            at = datetime.datetime.now(datetime.timezone.utc)
            boots[uuid] = (ends, at + datetime.timedelta(seconds=reset_seconds))
        return response

    app.view_functions["system_reset_action"] = system_reset

    if apply_on_reset:
        service_endpoint = "UpdateService.update_service_resource"
        service_view = app.view_functions[service_endpoint]

        def update_service(*args, **kwargs):
            response = as_response(service_view(*args, **kwargs))
            if response.status_code != 200:
                return response
            try:
                body = json.loads(response.get_data())
            except ValueError:
                return response
            action = body.setdefault("Actions", {}).setdefault("#UpdateService.SimpleUpdate", {})
            action["@Redfish.OperationApplyTimeSupport"] = {
                "@odata.type": "#Settings.v1_3_5.OperationApplyTimeSupport",
                "SupportedValues": ["Immediate", "OnReset"],
            }
            response.set_data(json.dumps(body))
            return response

        app.view_functions[service_endpoint] = update_service


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    # A SIGTERM during start-up (before the server loop runs) also exits 0.
    def early_exit(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, early_exit)
    signal.signal(signal.SIGINT, early_exit)

    # sushy reads these at import time / in main() and they would override
    # what we pass on its command line (SUSHY_EMULATOR_LIBVIRT_URI wins over
    # --libvirt-uri). Make the peer independent of the caller's environment.
    for var in ("SUSHY_EMULATOR_CONFIG", "SUSHY_EMULATOR_LIBVIRT_URI",
                "SUSHY_EMULATOR_LIBVIRT_URL", "OS_CLOUD"):
        os.environ.pop(var, None)

    try:
        import libvirt
        import sushy_tools.emulator.main as sushy_main
        from werkzeug.serving import make_server
    except ImportError as e:
        die(f"{e}; run tests/peers/redfish/install.sh and start this script "
            f"with that venv's bin/python (not {sys.executable})")

    import logging
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.verbose:
        sushy_main.app.logger.setLevel(logging.INFO)
        try:  # plain access log lines (werkzeug colours them otherwise)
            import werkzeug.serving
            werkzeug.serving._log_add_style = False
        except Exception:
            pass

    # Silence libvirt's default error printer; errors surface as exceptions.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

    # Held until exit: keeps the test driver's in-memory state alive.
    conn = libvirt.open(LIBVIRT_URI)
    if conn is None:
        die(f"cannot open {LIBVIRT_URI}")
    names = define_domains(conn, args)

    # sushy keeps indicators, volumes and virtual media in SQLite files under
    # SUSHY_EMULATOR_STATE_DIR, by default one folder of the system's temp dir that
    # every emulator on the machine shares: peers started at once then fail with
    # "database is locked". Each peer has a folder of its own.
    state_dir = tempfile.mkdtemp(prefix="sushy-state-", dir=args.state_dir)
    sushy_main.app.config["SUSHY_EMULATOR_STATE_DIR"] = state_dir

    if args.htpasswd:
        # Application.configure() (called by sushy's main) installs the basic
        # auth middleware when this key is set.
        sushy_main.app.config["SUSHY_EMULATOR_AUTH_FILE"] = os.path.abspath(args.htpasswd)

    install_update_hooks(sushy_main.app, args.update_log and os.path.abspath(args.update_log),
                         firmware_inventory(names), args.task_seconds, args.fail_images,
                         args.apply_on_reset, args.reset_seconds,
                         {n for n in args.stuck_systems.split(",") if n})

    stop = threading.Event()

    def serve(host=None, port=None, ssl_context=None, **_ignored):
        # Replaces Flask's app.run() so that we bind first, learn the real
        # port (for --port 0) and can announce readiness on stdout.
        try:
            tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
            srv = make_server("127.0.0.1", args.port, sushy_main.app, threaded=True,
                              ssl_context=tls)
        except (OSError, SystemExit) as e:
            # werkzeug prints "Address already in use" and raises SystemExit(1)
            die(f"cannot listen on 127.0.0.1:{args.port}: {e}")

        def on_signal(_signum, _frame):
            if not stop.is_set():
                stop.set()
                # shutdown() blocks until serve_forever() returns, and
                # serve_forever() runs in this (the main) thread.
                threading.Thread(target=srv.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheme = "https" if args.tls_cert else "http"
        print(f"listening on {scheme}://127.0.0.1:{srv.server_port}", flush=True)
        try:
            srv.serve_forever(poll_interval=0.1)  # SIGTERM -> exit in ~0.1 s
        finally:
            srv.server_close()

    sushy_main.app.run = serve
    sys.argv = ["sushy-emulator", "--libvirt-uri", LIBVIRT_URI, "-i", "127.0.0.1"]
    if args.port:
        sys.argv += ["-p", str(args.port)]
    try:
        rc = sushy_main.main()
    finally:
        try:
            conn.close()
        except Exception:
            pass
        shutil.rmtree(state_dir, ignore_errors=True)
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
