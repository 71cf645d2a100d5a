//! Tier 2: the OCI images of the appliances, as containers and as unpacked root file
//! systems.
//!
//! * [`gateway_grid_in_docker_containers`]: where a Docker engine runs (`docker info`),
//!   the gwx and backend images are `docker load`ed (their image IDs must be the config
//!   digests of the OCI layouts), and a gateway grid runs in containers on two private
//!   `--internal` networks: a client, gateways gw1 and gw2, the hidden backend. The
//!   client fetches the backend's page through both gateways, cannot reach the backend
//!   directly, and still gets it through gw2 once gw1 is stopped. Where no engine runs,
//!   the test says so (and why) and passes: the other test still runs.
//! * [`unpacked_gwx_image_runs_in_namespaces`]: always. The gwx image is unpacked from
//!   its OCI layout (index, manifest, layer; every digest checked), its root file system
//!   checked against the appliance definition, its programs run with `chroot` (their
//!   libraries must resolve inside the image), and gwx run from it in a grid of network
//!   namespaces in front of busybox httpd from the unpacked backend image.
//!
//! Both also run the image's own readiness check (`/etc/init.d/ready`, which prints
//! `appliance NAME ready`); a check that never passes fails the test, and one that can
//! never pass (the image's busybox crashes or rejects its options) says why at once.
//!
//! Run: `cargo test -p appliance-tests --test containers -- --ignored --nocapture`.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use appliance_tests::docker::{self, Docker, Spec};
use appliance_tests::{Appliance, appliance};
use imgbuild::definition::{Definition, ready_marker};
use imgbuild::oci::sha256;
use serde_json::Value;
use testbed::clients::{healthz, http_get, parse_metrics};
use testbed::topology::Grid;
use testbed::{Netns, Process};

/// The grid the gwx image ships (`images/files/gwx/grid.toml`); checked against what
/// the image's own `gwx check` prints.
const GW: [(&str, &str, &str); 2] = [
    ("gw1", "203.0.113.11", "192.0.2.11"),
    ("gw2", "203.0.113.12", "192.0.2.12"),
];
const BACKEND: &str = "192.0.2.2";
const SERVICE_PORT: u16 = 8080;
const CLIENT: &str = "203.0.113.100";
const PUBLIC_NET: &str = "203.0.113.0/24";
const PRIVATE_NET: &str = "192.0.2.0/24";
/// gwx's metrics and health endpoint in the shipped grid (`runtime.metrics_listen`).
const METRICS: &str = "127.0.0.1:9100";
/// How long a container or daemon may take to come up on a busy 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One test at a time (also without `--test-threads=1`): they share 2 cores, and their
/// output reads better unmixed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
#[ignore = "tier 2: needs the built images (scripts/test builds them), root, and a Docker engine (else it says so and skips the container part)"]
fn gateway_grid_in_docker_containers() {
    let _serial = serial();
    let started = Instant::now();
    let gwx = appliance("gwx");
    let backend = appliance("backend");
    let version = match docker::engine() {
        Ok(v) => v,
        Err(why) => {
            loud(&format!(
                "SKIPPED: the Docker container grid of the OCI images did not run: no Docker \
                 engine here ({why}). The chroot and namespace checks of the unpacked image \
                 (unpacked_gwx_image_runs_in_namespaces) run without it."
            ));
            return;
        }
    };
    testbed::require::root().unwrap();
    println!("== Docker engine {version}");
    let page = expected_page();
    kernel_modules(&definition("gwx"));

    let mut d = Docker::new().unwrap();
    let mut images = Vec::new();
    for app in [&gwx, &backend] {
        let oci = OciImage::read(&app.oci_layout);
        let reference = format!("{}/{}:{}", imgbuild::oci::REPOSITORY, app.name, oci.tag);
        let t = Instant::now();
        let image = d.load_image(&app.oci_tar, &reference).unwrap();
        assert_eq!(
            image.id,
            oci.config_digest,
            "{reference}: the loaded image's ID is not the config digest of the OCI layout {}",
            app.oci_layout.display()
        );
        println!(
            "== docker load -i {}: {reference} = {} (the layout's config digest; manifest {}) in {:.1?}{}",
            app.oci_tar.display(),
            image.id,
            oci.manifest_digest,
            t.elapsed(),
            if image.loaded_here {
                ""
            } else {
                " (already there: kept at the end)"
            }
        );
        images.push(image);
    }
    let (gwx_image, backend_image) = (&images[0].reference, &images[1].reference);

    let public = d.internal_network("public", PUBLIC_NET).unwrap();
    let private = d.internal_network("private", PRIVATE_NET).unwrap();
    println!(
        "== networks (--internal, no host address): {} {PUBLIC_NET} on {}, {} {PRIVATE_NET} on {}",
        public.name, public.bridge, private.name, private.bridge
    );

    let (sysctls, global) = namespaced_sysctls(&definition("gwx"));
    println!(
        "== gateway sysctls from the definition as --sysctl: {} (not per network namespace, \
         left to the host: {})",
        sysctls.len(),
        if global.is_empty() {
            "none".to_owned()
        } else {
            global.join(", ")
        }
    );
    let t = Instant::now();
    let mut containers = Vec::new();
    let mut run = |spec: Spec, def: &str| {
        let name = d.run(&spec).unwrap();
        containers.push((name, def.to_owned(), Instant::now()));
    };
    run(
        Spec {
            label: "backend".into(),
            image: backend_image.clone(),
            networks: vec![(private.name.clone(), BACKEND.into())],
            // Its setup step applies gwx's backend ruleset.
            cap_add: vec!["NET_ADMIN".into()],
            ..Spec::default()
        },
        "backend",
    );
    for (id, public_ip, private_ip) in GW {
        run(
            Spec {
                label: id.into(),
                image: gwx_image.clone(),
                networks: vec![
                    (public.name.clone(), public_ip.into()),
                    (private.name.clone(), private_ip.into()),
                ],
                env: vec![("APPLIANCE_GATEWAY".into(), id.into())],
                cap_add: vec!["NET_ADMIN".into()],
                sysctls: sysctls.clone(),
            },
            "gwx",
        );
    }
    // The backend image has busybox's wget and nc: it serves as the client (as in the
    // VM tests), booting as it always does, its ruleset setup step included.
    run(
        Spec {
            label: "client".into(),
            image: backend_image.clone(),
            networks: vec![(public.name.clone(), CLIENT.into())],
            cap_add: vec!["NET_ADMIN".into()],
            ..Spec::default()
        },
        "backend",
    );
    for (name, def, since) in &containers {
        let how = wait_container_ready(&d, name, &definition(def), *since);
        println!("   {name}: {how}");
    }
    println!("== 4 containers up and ready in {:.1?}", t.elapsed());
    for (name, ..) in &containers {
        let console = d.logs(name).unwrap();
        let failed: Vec<&str> = console
            .lines()
            .filter(|l| l.starts_with("rcS:") && l.contains("failed"))
            .collect();
        assert!(
            failed.is_empty(),
            "{name}: its boot (rcS) reports failures: {failed:?}; console:\n{console}"
        );
    }
    println!("   no failure in any container's boot (rcS: ruleset, setup steps)");
    let [_, gw1, gw2, client] = [0, 1, 2, 3].map(|i| containers[i].0.clone());

    let fetch_within = |gateway: &str, secs: u32| {
        d.sh(
            &client,
            &format!("timeout {secs} wget -q -O - 'http://{gateway}:{SERVICE_PORT}/'"),
        )
        .unwrap()
    };
    let fetch = |gateway: &str| fetch_within(gateway, 10);
    // gwx's own count of the payload it relayed to clients, on each gateway.
    let to_client = |gateway: &str| -> f64 {
        let metrics = d
            .sh_ok(
                gateway,
                &format!("timeout 10 wget -q -O - 'http://{METRICS}/metrics'"),
            )
            .unwrap();
        parse_metrics(&metrics)
            .iter()
            .filter(|s| s.name == "gwx_bytes_total" && s.label("direction") == Some("to_client"))
            .map(|s| s.value)
            .sum()
    };
    for ((id, public_ip, _), gateway) in GW.into_iter().zip([&gw1, &gw2]) {
        let before = to_client(gateway);
        let out = fetch(public_ip);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout) == page,
            "client -> {id} {public_ip}:{SERVICE_PORT}: {}, got {:?} (stderr {:?})",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let relayed = to_client(gateway) - before;
        assert!(
            relayed >= page.len() as f64,
            "{id}: gwx relayed {relayed} bytes to clients during the fetch: the page did not \
             come through gwx"
        );
        println!(
            "== client -> {id} http://{public_ip}:{SERVICE_PORT}/: the backend's page {:?}, \
             relayed by gwx ({relayed} bytes to the client by its gwx_bytes_total)",
            page.trim()
        );
    }

    // Every service of every container is still the one init started first.
    for (name, def, _) in &containers {
        let console = d.logs(name).unwrap();
        let exited: Vec<&str> = console
            .lines()
            .filter(|l| l.starts_with("svc:") && l.contains(" exited "))
            .collect();
        assert!(
            exited.is_empty(),
            "{name}: services of the {def} image exited: {exited:?}; console:\n{console}"
        );
    }
    println!("   no service exited in any container");

    // The client's network has no way to the private one: no route, no host router.
    let direct = d
        .sh(
            &client,
            &format!("timeout 10 wget -q -O - 'http://{BACKEND}:{SERVICE_PORT}/'"),
        )
        .unwrap();
    assert!(
        !direct.status.success() && !String::from_utf8_lossy(&direct.stdout).contains(page.trim()),
        "the client reached the backend {BACKEND} directly: {direct:?}"
    );
    println!(
        "== client -> backend {BACKEND}:{SERVICE_PORT} directly: unreachable as it must be ({})",
        String::from_utf8_lossy(&direct.stderr).trim()
    );

    let t = Instant::now();
    d.stop(&gw1, Duration::from_secs(20)).unwrap();
    let (status, code) = d.state(&gw1).unwrap();
    assert_eq!(
        (status.as_str(), code),
        ("exited", 0),
        "gw1 did not halt cleanly on its stop signal (SIGUSR2 to busybox init); console:\n{}",
        d.logs(&gw1).unwrap_or_default()
    );
    println!(
        "== docker stop gw1: halted by its stop signal, exit code 0, in {:.1?}",
        t.elapsed()
    );
    for n in 1..=3 {
        let out = fetch(GW[1].1);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout) == page,
            "with gw1 stopped, client -> gw2 (request {n}): {out:?}"
        );
    }
    let out = fetch_within(GW[0].1, 5);
    assert!(
        !out.status.success(),
        "gw1 is stopped yet answered: {out:?}"
    );
    println!(
        "== with gw1 stopped: gw2 still forwards (3 of 3 requests), gw1 does not ({}{})",
        match out.status.code() {
            Some(143) => "no answer within 5 s".to_owned(),
            _ => out.status.to_string(),
        },
        match String::from_utf8_lossy(&out.stderr).trim() {
            "" => String::new(),
            e => format!(": {e}"),
        }
    );

    // Everything goes with the handle: check that it did.
    let prefix = d.name("");
    drop(d);
    let left = |args: &[&str]| -> Vec<String> {
        let out = Command::new("docker").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&prefix))
            .map(str::to_owned)
            .collect()
    };
    let mut leftovers = left(&["ps", "--all", "--format", "{{.Names}}"]);
    leftovers.extend(left(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for image in images.iter().filter(|i| i.loaded_here) {
        let out = Command::new("docker")
            .args(["image", "inspect", &image.reference])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the loaded image {} was not removed",
            image.reference
        );
    }
    println!("== containers, networks and loaded images removed");
    println!("== docker grid: done in {:.1?}", started.elapsed());
}

#[test]
#[ignore = "tier 2: needs the built images (scripts/test builds them) and root"]
fn unpacked_gwx_image_runs_in_namespaces() {
    let _serial = serial();
    let started = Instant::now();
    testbed::require::root().unwrap();
    testbed::require::tool("chroot", "coreutils").unwrap();
    testbed::require::tool("unshare", "util-linux").unwrap();
    let (gwx, backend) = (appliance("gwx"), appliance("backend"));
    let (gwx_def, backend_def) = (definition("gwx"), definition("backend"));
    // Dropped last: the daemons below run from it.
    let tmp = tempfile::tempdir().unwrap();

    let gwx_oci = OciImage::read(&gwx.oci_layout);
    let gwx_root = tmp.path().join("gwx");
    let t = Instant::now();
    let entries = gwx_oci.unpack(&gwx_root);
    println!(
        "== unpacked {} (manifest {}, {} layer(s), {entries} entries) in {:.1?}",
        gwx.oci_layout.display(),
        gwx_oci.manifest_digest,
        gwx_oci.layers.len(),
        t.elapsed()
    );
    gwx_oci.check_config();
    check_rootfs(&gwx_root, &gwx_def, &gwx);
    println!(
        "== rootfs has what images/appliances/gwx.toml says (services, programs, files, boot scripts)"
    );

    let env = gwx_oci.env();
    let nft = output(chroot(&gwx_root, &env, &["/usr/sbin/nft", "--version"]));
    println!("== chroot nft --version: {}", nft.trim());
    let check = output(chroot(
        &gwx_root,
        &env,
        &["/usr/bin/gwx", "--config", "/etc/gwx/grid.toml", "check"],
    ));
    println!(
        "== chroot gwx --config /etc/gwx/grid.toml check:\n{}",
        check.trim_end()
    );
    check_shipped_grid(&check);

    let backend_oci = OciImage::read(&backend.oci_layout);
    let backend_root = tmp.path().join("backend");
    backend_oci.unpack(&backend_root);
    backend_oci.check_config();
    check_rootfs(&backend_root, &backend_def, &backend);
    println!("== unpacked and checked {}", backend.oci_layout.display());

    kernel_modules(&gwx_def);
    let grid = Grid::new(1).unwrap();
    assert_eq!(
        (
            Grid::gateway_public(0),
            Grid::gateway_private(0),
            Grid::BACKEND
        ),
        (GW[0].1.to_owned(), GW[0].2.to_owned(), BACKEND),
        "the test bed's grid no longer has the shipped grid's addresses"
    );
    let gw = &grid.gateways[0];
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    let t = Instant::now();
    // The backend as its image boots it: the setup steps (gwx's backend ruleset), then
    // the services (busybox httpd).
    let backend_env = backend_oci.env();
    for step in &backend_def.setup {
        let argv = step.argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        output(in_runtime(
            &grid.backend,
            &backend_root,
            &backend_env,
            &argv,
        ));
        println!("   backend setup step {}: {}", step.name, argv.join(" "));
    }
    let mut backend_services = Vec::new();
    for service in &backend_def.services {
        let argv = service.argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        backend_services.push(
            Process::spawn(
                &format!("backend service {}", service.name),
                in_runtime(&grid.backend, &backend_root, &backend_env, &argv),
                &logs.join(format!("backend-{}.log", service.name)),
            )
            .unwrap(),
        );
    }
    let backend_addr = format!("{BACKEND}:{SERVICE_PORT}");
    // Up when the gateway reaches it: its ruleset admits no one else on that port.
    backend_services[0]
        .wait_ready(READY_TIMEOUT, || match http_get(gw, &backend_addr, "/") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        })
        .unwrap();
    let mut gwx_run = Process::spawn(
        "gwx run (gwx image)",
        in_runtime(
            gw,
            &gwx_root,
            &env,
            &[
                "/usr/bin/gwx",
                "--config",
                "/etc/gwx/grid.toml",
                "--gateway",
                "gw1",
                "run",
            ],
        ),
        &logs.join("gwx.log"),
    )
    .unwrap();
    gwx_run
        .wait_ready(READY_TIMEOUT, || healthz(gw, METRICS))
        .unwrap();
    println!(
        "== grid of namespaces: backend httpd and gwx gw1 (both chrooted in the unpacked \
         images) up in {:.1?}",
        t.elapsed()
    );
    let how = chroot_ready(gw, &gwx_root, &env, &gwx_def);
    println!("   gw1: {how}");
    let how = chroot_ready(&grid.backend, &backend_root, &backend_env, &backend_def);
    println!("   backend: {how}");

    let page = expected_page();
    for n in 1..=3 {
        let (code, body) = http_get(&grid.client, &format!("{}:{SERVICE_PORT}", GW[0].1), "/")
            .unwrap_or_else(|e| {
                panic!(
                    "client -> gw1 (request {n}): {e}\n--- gwx log ---\n{}",
                    gwx_run.log_tail(20)
                )
            });
        assert_eq!(
            (code, body.as_str()),
            (200, page.as_str()),
            "client -> gw1, request {n}"
        );
    }
    println!(
        "== client {} -> gw1 http://{}:{SERVICE_PORT}/: the backend's page, 3 of 3 requests",
        Grid::CLIENT,
        GW[0].1
    );
    let direct = http_get(&grid.client, &backend_addr, "/");
    assert!(
        direct.is_err(),
        "the client reached the backend directly: {direct:?}"
    );
    println!(
        "== client -> backend {backend_addr} directly: {}",
        direct.unwrap_err()
    );

    let kill = Command::new("kill")
        .args(["-s", "TERM", &gwx_run.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -s TERM gwx: {kill}");
    let status = gwx_run.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(
        status.success(),
        "gwx ended with {status} on SIGTERM:\n{}",
        gwx_run.log_tail(20)
    );
    println!("== gwx drained and exited on SIGTERM: {status}");
    drop(backend_services);
    println!(
        "== unpacked image in namespaces: done in {:.1?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// The OCI image layout.

/// An image of an OCI layout: its one manifest (from `index.json`), config and layers.
struct OciImage {
    dir: PathBuf,
    /// `org.opencontainers.image.ref.name` of the manifest in the index.
    tag: String,
    manifest_digest: String,
    config_digest: String,
    config: Value,
    /// (digest, size) of each layer, in order.
    layers: Vec<(String, Value)>,
}

impl OciImage {
    fn read(dir: &Path) -> OciImage {
        let layout: Value = json(&dir.join("oci-layout"));
        assert_eq!(
            layout["imageLayoutVersion"],
            "1.0.0",
            "{}: oci-layout",
            dir.display()
        );
        let index: Value = json(&dir.join("index.json"));
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            manifests.len(),
            1,
            "{}: one manifest in index.json",
            dir.display()
        );
        let desc = &manifests[0];
        assert_eq!(
            desc["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let mut image = OciImage {
            dir: dir.to_owned(),
            tag: str_of(&desc["annotations"]["org.opencontainers.image.ref.name"]),
            manifest_digest: str_of(&desc["digest"]),
            config_digest: String::new(),
            config: Value::Null,
            layers: Vec::new(),
        };
        let manifest: Value =
            serde_json::from_slice(&image.blob(&image.manifest_digest, &desc["size"])).unwrap();
        image.config_digest = str_of(&manifest["config"]["digest"]);
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        image.config =
            serde_json::from_slice(&image.blob(&image.config_digest, &manifest["config"]["size"]))
                .unwrap();
        for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "{}: layer {layer}",
                dir.display()
            );
            image
                .layers
                .push((str_of(&layer["digest"]), layer["size"].clone()));
        }
        assert!(!image.layers.is_empty(), "{}: no layers", dir.display());
        image
    }

    /// The blob `digest`, checked against its digest and the descriptor's size.
    fn blob(&self, digest: &str, size: &Value) -> Vec<u8> {
        let (algorithm, hex) = digest
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: digest {digest:?}", self.dir.display()));
        let path = self.dir.join("blobs").join(algorithm).join(hex);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            sha256(&data),
            digest,
            "{}: content does not match its name",
            path.display()
        );
        assert_eq!(
            Some(data.len() as u64),
            size.as_u64(),
            "{}: size differs from its descriptor",
            path.display()
        );
        data
    }

    /// Unpacks the layers in order into `root` (created); checks each layer's
    /// uncompressed digest against the config's `diff_ids`. Returns the entry count.
    fn unpack(&self, root: &Path) -> usize {
        std::fs::create_dir_all(root).unwrap();
        let diff_ids = self.config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            diff_ids.len(),
            self.layers.len(),
            "{}: a diff_id per layer",
            self.dir.display()
        );
        let mut entries = 0;
        for ((digest, size), diff_id) in self.layers.iter().zip(&diff_ids) {
            let gz = self.blob(digest, size);
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut tar)
                .unwrap_or_else(|e| panic!("layer {digest}: not gzip: {e}"));
            assert_eq!(
                Value::from(sha256(&tar)),
                *diff_id,
                "layer {digest}: uncompressed digest is not the config's diff_id"
            );
            entries += tar::Archive::new(tar.as_slice()).entries().unwrap().count();
            let mut archive = tar::Archive::new(tar.as_slice());
            archive.set_preserve_permissions(true);
            archive.set_overwrite(true);
            archive
                .unpack(root)
                .unwrap_or_else(|e| panic!("unpack layer {digest} into {}: {e}", root.display()));
        }
        entries
    }

    /// The config's `Env` (`KEY=VALUE`).
    fn env(&self) -> Vec<String> {
        self.config["config"]["Env"]
            .as_array()
            .map(|a| a.iter().map(str_of).collect())
            .unwrap_or_default()
    }

    /// What a runtime reads from the config: the init it starts, how to stop it.
    fn check_config(&self) {
        let c = &self.config;
        assert_eq!(
            (&c["os"], &c["architecture"]),
            (&Value::from("linux"), &Value::from("amd64"))
        );
        assert_eq!(c["config"]["Entrypoint"], serde_json::json!(["/sbin/init"]));
        // busybox init halts on SIGUSR2; SIGTERM would make it reboot.
        assert_eq!(c["config"]["StopSignal"], "SIGUSR2");
        assert!(
            self.env().iter().any(|e| e.starts_with("PATH=")),
            "{}: no PATH in the config's Env",
            self.dir.display()
        );
    }
}

fn json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The unpacked root file system.

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn definition(name: &str) -> Definition {
    Definition::load(&workspace().join(format!("images/appliances/{name}.toml"))).unwrap()
}

/// The page the backend image serves.
fn expected_page() -> String {
    std::fs::read_to_string(workspace().join("images/files/backend/index.html")).unwrap()
}

/// `path` (absolute, in the image) under `root`, following symlinks the way the image
/// sees them (absolute targets are inside the image).
fn resolve(root: &Path, path: &str) -> PathBuf {
    let mut current = PathBuf::from(path);
    for _ in 0..16 {
        let at = root.join(current.strip_prefix("/").unwrap_or(&current));
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at).unwrap();
                current = if target.is_absolute() {
                    target
                } else {
                    current.parent().unwrap_or(Path::new("/")).join(target)
                };
            }
            _ => return at,
        }
    }
    panic!("{path}: too many symlinks in the image");
}

fn assert_executable(root: &Path, path: &str) {
    let at = resolve(root, path);
    let m = std::fs::metadata(&at)
        .unwrap_or_else(|e| panic!("{path} is not in the image ({}): {e}", at.display()));
    assert!(
        m.is_file() && m.permissions().mode() & 0o111 != 0,
        "{path} in the image is no executable file ({:o})",
        m.permissions().mode()
    );
}

/// What to say when the image does not match its sources: whether it is older than
/// them (another build is due), by modification times.
fn staleness(app: &Appliance, def: &Definition) -> String {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = mtime(&app.oci_layout.join("index.json")) else {
        return String::new();
    };
    let files = workspace().join("images/files");
    let mut sources = vec![workspace().join(format!("images/appliances/{}.toml", def.name))];
    sources.extend(def.files.iter().map(|f| files.join(&f.source)));
    let newer: Vec<String> = sources
        .iter()
        .filter(|p| mtime(p).is_some_and(|t| t > built))
        .map(|p| p.display().to_string())
        .collect();
    if newer.is_empty() {
        String::new()
    } else {
        format!(
            " (the image is older than {}: rebuild it with `target/release/imgbuild build`)",
            newer.join(", ")
        )
    }
}

/// The root file system of an OCI image has what the definition says.
fn check_rootfs(root: &Path, def: &Definition, app: &Appliance) {
    let stale = staleness(app, def);
    let text = |path: &str| {
        std::fs::read_to_string(resolve(root, path))
            .unwrap_or_else(|e| panic!("{}: {path}: {e}", def.name))
    };
    // busybox init is the entrypoint.
    assert_executable(root, "/bin/busybox");
    assert_eq!(
        resolve(root, "/sbin/init"),
        resolve(root, "/bin/busybox"),
        "/sbin/init is not busybox"
    );
    let inittab = text("/etc/inittab");
    assert!(
        inittab.contains("::sysinit:/etc/init.d/rcS"),
        "inittab:\n{inittab}"
    );
    assert!(
        inittab.contains("::once:/etc/init.d/ready"),
        "inittab:\n{inittab}"
    );
    assert_executable(root, "/etc/init.d/rcS");
    assert_executable(root, "/etc/init.d/ready");
    assert!(
        text("/etc/init.d/ready").contains(&ready_marker(&def.name)),
        "/etc/init.d/ready does not print {:?}",
        ready_marker(&def.name)
    );
    for s in &def.services {
        let script = format!("/etc/init.d/svc-{}", s.name);
        assert!(
            inittab.contains(&format!("::respawn:{script}\n")),
            "inittab does not respawn {script}{stale}:\n{inittab}"
        );
        assert_executable(root, &script);
        let argv = s.argv();
        assert_executable(root, &argv[0]);
        let body = text(&script);
        assert!(
            body.contains(&format!("\"{}\"", argv[0])),
            "{script} does not run {}:\n{body}",
            argv[0]
        );
    }
    let rcs = text("/etc/init.d/rcS");
    for step in &def.setup {
        let argv = step.argv();
        assert_executable(root, &argv[0]);
        assert!(
            rcs.contains(&format!("\"{}\"", argv.join("\" \""))),
            "rcS does not run the setup step {} ({}){stale}",
            step.name,
            argv.join(" ")
        );
    }
    for p in &def.programs {
        assert_executable(root, &p.to_string_lossy());
    }
    for f in &def.files {
        let path = f.path.to_string_lossy();
        let at = resolve(root, &path);
        let source = workspace().join("images/files").join(&f.source);
        assert!(
            std::fs::read(&at).unwrap_or_default() == std::fs::read(&source).unwrap(),
            "{path} in the image differs from {}{stale}",
            source.display()
        );
        let mode = std::fs::metadata(&at).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, f.mode().unwrap(), "{path}: mode {mode:o}{stale}");
    }
    if let Some(n) = &def.nftables {
        let source = workspace().join("images/files").join(n);
        assert_eq!(
            std::fs::read(resolve(root, "/etc/nftables.conf")).unwrap(),
            std::fs::read(&source).unwrap(),
            "/etc/nftables.conf differs from {}{stale}",
            source.display()
        );
    }
    let sysctl = text("/etc/sysctl.d/appliance.conf");
    for (k, v) in &def.sysctl {
        assert!(
            sysctl.contains(&format!("{k} = {v}\n")),
            "/etc/sysctl.d/appliance.conf lacks {k} = {v}{stale}"
        );
    }
    // The OCI flavour leaves the kernel and /dev to the host and the runtime.
    for absent in ["/lib/modules", "/dev/console", "/init"] {
        assert!(
            std::fs::symlink_metadata(root.join(&absent[1..])).is_err(),
            "{absent} is in the OCI image: it belongs to the VM image"
        );
    }
}

/// What `gwx check` in the image printed: the grid this test assumes.
fn check_shipped_grid(check: &str) {
    let words: Vec<Vec<&str>> = check
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (id, public, private) in GW {
        assert!(
            words.contains(&vec!["gateway", id, "public", public, "private", private]),
            "the shipped grid no longer has {id} at {public} / {private}:\n{check}"
        );
    }
    let backend = format!("{BACKEND}:{SERVICE_PORT}");
    let listen = format!("tcp/{SERVICE_PORT}");
    assert!(
        words.iter().any(|w| w.len() >= 5
            && w[0] == "service"
            && w[2] == listen
            && w[4] == backend
            && w.last() == Some(&"proxy")),
        "the shipped grid no longer proxies tcp/{SERVICE_PORT} to {backend}:\n{check}"
    );
}

/// `chroot ROOT ARGV` with the image's environment only: nothing of the host but the
/// kernel. Enough for programs that need no `/dev` or `/proc`.
fn chroot(root: &Path, env: &[String], argv: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    with_env(&mut c, env);
    c.arg(root).args(argv);
    c
}

/// `chroot ROOT ARGV` in `ns` with what a container runtime adds to the image: `/dev`
/// and `/proc`, mounted in a private mount namespace of the command (they go with it),
/// and the image's environment.
fn in_runtime(ns: &Netns, root: &Path, env: &[String], argv: &[&str]) -> Command {
    let mut c = ns.command("unshare");
    with_env(&mut c, env);
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" "$@""#,
    ])
    .arg(root)
    .args(argv);
    c
}

fn with_env(c: &mut Command, env: &[String]) {
    c.env_clear();
    for e in env {
        if let Some((k, v)) = e.split_once('=') {
            c.env(k, v);
        }
    }
}

/// Runs `cmd`; its stdout, or a panic with its stderr.
fn output(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads the definition's kernel modules that the host kernel lacks (the VM-only NIC
/// drivers aside), where it can load modules at all.
fn kernel_modules(def: &Definition) {
    let wanted: Vec<&str> = def
        .kernel_modules
        .iter()
        .map(String::as_str)
        .filter(|m| !m.starts_with("virtio"))
        .collect();
    let Ok(loaded) = std::fs::read_to_string("/proc/modules") else {
        println!(
            "== kernel modules: this kernel loads none (no /proc/modules): {} must be built in",
            wanted.join(", ")
        );
        return;
    };
    let release = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let builtin = std::fs::read_to_string(format!("/lib/modules/{release}/modules.builtin"))
        .unwrap_or_default();
    let has = |m: &str| {
        loaded.lines().any(|l| l.split(' ').next() == Some(m))
            || builtin
                .lines()
                .any(|l| l.rsplit('/').next() == Some(&format!("{m}.ko")))
    };
    let missing: Vec<&str> = wanted.iter().copied().filter(|m| !has(m)).collect();
    if missing.is_empty() {
        println!("== kernel modules: {} present", wanted.join(", "));
        return;
    }
    testbed::require::tool("modprobe", "kmod").unwrap();
    for m in missing {
        let out = Command::new("modprobe").arg(m).output().unwrap();
        println!(
            "== modprobe {m}: {}",
            if out.status.success() {
                "loaded".to_owned()
            } else {
                format!(
                    "failed ({}); gwx will say if it needs it",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            }
        );
    }
}

/// The definition's sysctls a container's network namespace owns (given with
/// `docker run --sysctl`), and the keys that are the host's (left out).
fn namespaced_sysctls(def: &Definition) -> (Vec<(String, String)>, Vec<String>) {
    let paths: Vec<String> = def
        .sysctl
        .keys()
        .map(|k| format!("/proc/sys/{}", k.replace('.', "/")))
        .collect();
    // Writable in a fresh network namespace: per namespace (a global key is absent or
    // read-only there). Nothing is written.
    let out = Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            r#"for p in "$@"; do [ -w "$p" ] && echo "$p"; done; true"#,
            "sh",
        ])
        .args(&paths)
        .output()
        .unwrap();
    assert!(out.status.success(), "unshare --net: {out:?}");
    let writable = String::from_utf8_lossy(&out.stdout).into_owned();
    let writable: Vec<&str> = writable.lines().collect();
    let mut ns = Vec::new();
    let mut global = Vec::new();
    for ((k, v), p) in def.sysctl.iter().zip(&paths) {
        if writable.contains(&p.as_str()) {
            ns.push((k.clone(), v.clone()));
        } else {
            global.push(k.clone());
        }
    }
    (ns, global)
}

// ---------------------------------------------------------------------------------------
// The image's readiness check (`/etc/init.d/ready`).

/// The check `/etc/init.d/ready` loops on: the `CHECK` of `while ! CHECK 2>/dev/null; do`.
fn ready_check(script: &str) -> Option<String> {
    script.lines().find_map(|l| {
        l.trim()
            .strip_prefix("while ! ")?
            .strip_suffix("; do")?
            .trim_end()
            .strip_suffix("2>/dev/null")
            .map(|c| c.trim().to_owned())
    })
}

/// One run of a check.
enum CheckRun {
    Passed,
    /// An ordinary failure: nothing answers (yet), or too late (`timeout`: 143).
    Failed(String),
    /// It can never pass: the program crashed (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV)
    /// or refused its options.
    Broken(String),
}

fn classify(out: &Output) -> CheckRun {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let code = out.status.code().unwrap_or(-1);
    let shown = format!(
        "status {code}{}{}",
        match code {
            139 => " (SIGSEGV)",
            134 => " (SIGABRT)",
            _ => "",
        },
        if stderr.is_empty() {
            String::new()
        } else {
            format!(
                ", stderr: {}",
                stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
            )
        }
    );
    if out.status.success() {
        CheckRun::Passed
    } else if matches!(code, 132 | 134 | 135 | 136 | 139)
        || ["invalid option", "unrecognized option", "Usage:"]
            .iter()
            .any(|s| stderr.contains(s))
    {
        CheckRun::Broken(shown)
    } else {
        CheckRun::Failed(shown)
    }
}

/// Waits for `appliance NAME ready` on the container's console. A check of the image's
/// that can never pass fails the test at once, with what is wrong with it.
fn wait_container_ready(d: &Docker, container: &str, def: &Definition, started: Instant) -> String {
    let marker = ready_marker(&def.name);
    let script = d.sh_ok(container, "cat /etc/init.d/ready").unwrap();
    let check = ready_check(&script);
    let start = started;
    let mut last = String::from("not run");
    loop {
        let logs = d.logs(container).unwrap();
        if logs.contains(&marker) {
            return format!(
                "{marker:?} on its console (seen {:.1?} after its start)",
                start.elapsed()
            );
        }
        if let Some(check) = &check {
            match classify(&d.sh(container, check).unwrap()) {
                CheckRun::Passed => last = "passes by hand; marker pending".into(),
                CheckRun::Failed(why) => last = why,
                CheckRun::Broken(why) => panic!("{}", broken_check(def, check, &why)),
            }
        }
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "{container}: no {marker:?} within {READY_TIMEOUT:?} (its check `{}`: {last}); \
             console:\n{logs}\n--- its nft list ruleset ---\n{}",
            check.as_deref().unwrap_or("not found in /etc/init.d/ready"),
            d.sh(container, "nft list ruleset 2>&1")
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the image's `/etc/init.d/ready` in `ns` against the (healthy) service there:
/// it must print `appliance NAME ready` at once.
fn chroot_ready(ns: &Netns, root: &Path, env: &[String], def: &Definition) -> String {
    let marker = ready_marker(&def.name);
    let script = std::fs::read_to_string(root.join("etc/init.d/ready")).unwrap();
    if let Some(check) = ready_check(&script) {
        let out = in_runtime(ns, root, env, &["/bin/sh", "-c", &check])
            .output()
            .unwrap();
        match classify(&out) {
            CheckRun::Passed => {}
            CheckRun::Failed(why) => panic!(
                "{}: the image's ready check `{check}` fails against the healthy service: \
                 {why}\n--- nft list ruleset in {} ---\n{}",
                def.name,
                ns.name(),
                ns.exec("nft", &["list", "ruleset"])
                    .unwrap_or_else(|e| e.to_string())
            ),
            CheckRun::Broken(why) => panic!("{}", broken_check(def, &check, &why)),
        }
    }
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "30"]);
    let inner = in_runtime(ns, root, env, &["/etc/init.d/ready"]);
    c.arg(inner.get_program()).args(inner.get_args());
    with_env(&mut c, env);
    let out = output(c);
    assert!(
        out.contains(&marker),
        "/etc/init.d/ready printed {out:?}, not {marker:?}"
    );
    format!("/etc/init.d/ready printed {marker:?}")
}

/// What is wrong with an image's ready check `check` that can never pass (`why`: how
/// it failed), with the known causes in Debian's busybox.
fn broken_check(def: &Definition, check: &str, why: &str) -> String {
    let cause = if check.contains("wget") && check.contains(" -T ") {
        "busybox 1.35's wget (Debian busybox-static, the image's busybox) crashes with \
         SIGSEGV whenever -T is given"
    } else if check.contains("nc -z") {
        "the image's busybox nc has no -z (Debian's busybox-static is built without \
         NC_EXTRA): it prints its usage and fails, whatever the port"
    } else {
        "the image's busybox cannot run it"
    };
    format!(
        "the {name} image never prints {marker:?}: /etc/init.d/ready loops on `{check}`, \
         which can never pass: {why}. Cause: {cause}. Where: images/builder/src/boot.rs, \
         fn ready_script.",
        name = def.name,
        marker = ready_marker(&def.name),
    )
}

/// Says `text` on stderr past the test harness's capture, so that a skip or a builder
/// bug shows in every run, `--nocapture` or not.
fn loud(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n!! {text}\n");
    let _ = err.flush();
}
