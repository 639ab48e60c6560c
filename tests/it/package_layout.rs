//! A BigBlueButton server's bbb-webhooks 3.x files, as its Debian package and an operator leave
//! them (tests/fixtures/bbb-webhooks-3.x-package), read by the real binary without `--config`:
//! `config check` shows them without a warning, and `serve`, `simulate` and `hooks` all reach the
//! Redis they name: a private one with a password on a port of its own, so nothing here shares
//! the common Redis (its keys are the stock ones, in a server of the test's own). No command's
//! error shows a secret, a password or a checksum.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::*;
use crate::private_redis::PrivateRedis;

/// What the fixture's default.yml and production.yml hold.
const PACKAGE_SECRET: &str = "3b6e2c1f9a0d4e8b7c5a1f2e3d4c5b6a7f8e9d0c";
const REDIS_PASSWORD: &str = "redis-pass-7d2e4f";
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/bbb-webhooks-3.x-package"
);

/// A scratch root with the package's `default.yml` (one of the two revisions) and the
/// operator's `production.yml` pointing at `redis`'s port, at the paths of a real server.
fn server_root(default_yml: &str, redis: &PrivateRedis) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let place = |path: &str, text: &str| {
        let full = root.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    let read = |name: &str| std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap();
    place(
        "usr/local/bigbluebutton/bbb-webhooks/config/default.yml",
        &read(default_yml),
    );
    let production = read("production.yml").replace("port: 6380", &format!("port: {}", redis.port));
    assert!(production.contains(REDIS_PASSWORD));
    place("etc/bigbluebutton/bbb-webhooks/production.yml", &production);
    root
}

/// The real binary, looking for its files under `root`, with none of this process's settings.
fn bin(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bbb-webhooks"));
    for variable in bbb_webhooks::config::variable_names() {
        c.env_remove(variable);
    }
    c.args(args)
        .env_remove("BBB_WEBHOOKS_CONFIG")
        .env_remove("RUST_LOG")
        .env(bbb_webhooks::config::ROOT_VARIABLE, root);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No secret, no password, no checksum parameter and nothing that looks like a digest.
fn assert_clean(output: &str, secrets: &[&str]) {
    for secret in secrets.iter().chain(&[PACKAGE_SECRET, REDIS_PASSWORD]) {
        assert!(!output.contains(secret), "{secret:?} shown: {output}");
    }
    assert!(!output.contains("checksum="), "a checksum shown: {output}");
    let longest_hex = output
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest_hex < 40, "a digest shown: {output}");
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key}: {out}"))
}

#[test]
fn config_check_reads_the_package_layout_without_a_warning() {
    let redis = PrivateRedis::with_password(REDIS_PASSWORD);
    for (default_yml, log_file) in [
        ("default.yml", "(default)"),
        ("default-later-packaging.yml", "(file "),
    ] {
        let root = server_root(default_yml, &redis);
        let o = bin(root.path(), &["config", "check"]).output().unwrap();
        let out = text(&o);
        assert!(o.status.success(), "{default_yml}: {out}");
        let default = root
            .path()
            .join("usr/local/bigbluebutton/bbb-webhooks/config/default.yml");
        let production = root
            .path()
            .join("etc/bigbluebutton/bbb-webhooks/production.yml");
        for (file, status) in [
            (&default, "read (bbb-webhooks 3.x layout)"),
            (&production, "read (bbb-webhooks 3.x layout)"),
            (
                &root
                    .path()
                    .join("etc/bigbluebutton/bbb-webhooks/config.yml"),
                "not present",
            ),
        ] {
            assert!(
                out.lines()
                    .any(|l| l.contains(&*file.to_string_lossy()) && l.ends_with(status)),
                "{}: {status}: {out}",
                file.display()
            );
        }
        let from = |file: &PathBuf| format!("(file {})", file.display());
        assert!(line(&out, "redis.port").contains(&redis.port.to_string()));
        assert!(line(&out, "redis.port").ends_with(&from(&production)));
        assert!(line(&out, "redis.password").contains("<redacted>"));
        assert!(line(&out, "bbb.auth2_0").contains("true"));
        assert!(line(&out, "bbb.auth2_0").ends_with(&from(&default)));
        assert!(line(&out, "api.port").contains("3005"));
        assert!(
            line(&out, "log.filename").contains("/var/log/bbb-webhooks/bbb-webhooks.log")
                && line(&out, "log.filename").contains(log_file),
            "{out}"
        );
        // The package's own keys are no warning: one quiet line says they were skipped.
        assert!(!out.contains("note:"), "{default_yml}: {out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("skipped: ")).count(),
            1,
            "{out}"
        );
        assert_clean(&out, &[]);
    }
}

#[tokio::test]
async fn serve_simulate_and_hooks_reach_the_configured_redis() {
    let redis = PrivateRedis::with_password(REDIS_PASSWORD);
    let root = server_root("default.yml", &redis);
    let port = free_port().to_string();
    // Where the package's default.yml says: the API port is the one thing moved, as SERVER_PORT
    // for every command alike.
    let run = {
        let root = root.path().to_path_buf();
        let port = port.clone();
        move |args: Vec<String>, env: Vec<(&'static str, String)>| {
            let root = root.clone();
            let port = port.clone();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                bin(&root, &args)
                    .env("SERVER_PORT", &port)
                    .envs(env)
                    .output()
                    .unwrap()
            })
        }
    };
    let mut serve = bin(root.path(), &["serve"]);
    serve
        .env("SERVER_PORT", &port)
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null());
    let service = Service {
        child: serve.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    service.wait_ready().await;

    let receiver = Receiver::start().await;
    let url = receiver.url("/bbb");
    let o = run(vec!["hooks".into(), "create".into(), url.clone()], vec![])
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout)
        .trim()
        .strip_prefix("created: ")
        .unwrap()
        .to_string();
    let o = run(vec!["hooks".into(), "list".into()], vec![])
        .await
        .unwrap();
    let listed = text(&o);
    assert!(
        o.status.success() && listed.contains(&id) && listed.contains(&url),
        "{listed}"
    );
    // Registered in the Redis of production.yml, under the stock keys.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let hooks: Vec<String> = redis::cmd("SMEMBERS")
        .arg("bigbluebutton:webhooks:out:hooks")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(hooks, vec![id.clone()]);

    // simulate publishes on the BigBlueButton channels of that Redis, where the service listens.
    let o = run(
        [
            "simulate",
            "--pace-ms",
            "0",
            "--users",
            "2",
            "--no-recording",
        ]
        .map(String::from)
        .to_vec(),
        vec![],
    )
    .await
    .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "publishing on redis://:redacted@127.0.0.1:{}",
            redis.port
        )),
        "{said}"
    );
    assert_clean(&said, &[]);
    let got = receiver.wait_for("/bbb", 1, WAIT).await;
    assert!(
        eventually(WAIT, || async {
            ids(&receiver.events_on("/bbb")).contains(&"meeting-ended".to_string())
        })
        .await,
        "{:?}",
        ids(&receiver.events_on("/bbb"))
    );
    assert_eq!(ids(&receiver.events_on("/bbb"))[0], "meeting-created");
    // The package's bbb.auth2_0: true and its secret.
    assert_eq!(
        got[0].header("authorization").as_deref(),
        Some(format!("Bearer {PACKAGE_SECRET}").as_str())
    );

    // The errors an operator meets: another secret, another port, another Redis password.
    let o = run(
        vec!["hooks".into(), "list".into()],
        vec![("SHARED_SECRET", "not-the-services-secret".into())],
    )
    .await
    .unwrap();
    let said = text(&o);
    assert!(!o.status.success());
    assert!(
        said.contains("checksumError") && said.contains("bbb.sharedSecret from env SHARED_SECRET"),
        "{said}"
    );
    assert_clean(&said, &["not-the-services-secret"]);
    let closed = free_port().to_string();
    let o = run(
        vec!["hooks".into(), "list".into()],
        vec![("SERVER_PORT", closed.clone())],
    )
    .await
    .unwrap();
    let said = text(&o);
    assert!(
        !o.status.success()
            && said.contains(&format!("http://127.0.0.1:{closed}"))
            && said.contains("api.port from env SERVER_PORT"),
        "{said}"
    );
    assert_clean(&said, &[]);
    let o = run(
        vec!["simulate".into()],
        vec![("REDIS_PASSWORD", "a-wrong-password".into())],
    )
    .await
    .unwrap();
    let said = text(&o);
    assert!(
        !o.status.success() && said.contains("wants a password, or another one"),
        "{said}"
    );
    assert_clean(&said, &["a-wrong-password"]);
    let o = run(
        vec!["config".into(), "check".into()],
        vec![("HOOK_CHECKSUM_ALGORITHM", "md5".into())],
    )
    .await
    .unwrap();
    let said = text(&o);
    assert!(!o.status.success() && said.contains("<- invalid"), "{said}");
    assert_clean(&said, &[]);

    let (status, _) = service.stop();
    assert!(status.success());
}
