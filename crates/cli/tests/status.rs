//! `status --json` reflects each gate variable.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

/// What `status` reports as `gate.{intercept, ipfs, force_local, ci}`.
#[derive(Debug, Clone, Copy)]
struct Expect {
    intercept: bool,
    ipfs: bool,
    force_local: bool,
    ci: bool,
}

/// The default decision: intercept, IPFS on, not forced local, not CI.
const DEFAULT: Expect = Expect {
    intercept: true,
    ipfs: true,
    force_local: false,
    ci: false,
};

/// A CI system: no interception (unless forced), IPFS on.
const ON_CI: Expect = Expect {
    intercept: false,
    ci: true,
    ..DEFAULT
};

/// The variable every CI system sets, with the value it sets.
const CI_SYSTEMS: &str = "CI=true GITHUB_ACTIONS=true GITLAB_CI=true \
    JENKINS_URL=http://ci.example/ BUILDKITE=true CIRCLECI=true TRAVIS=true \
    TF_BUILD=True TEAMCITY_VERSION=2025.1 BITBUCKET_BUILD_NUMBER=42";

/// `K=V` pairs separated by spaces.
fn vars(list: &str) -> Vec<(String, String)> {
    list.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn gate_table() {
    let no_intercept = Expect {
        intercept: false,
        ..DEFAULT
    };
    let mut cases: Vec<(&str, Expect)> = vec![
        ("", DEFAULT),
        ("TRANSFORMERS_PATCH_DISABLE=1", no_intercept),
        ("TRANSFORMERS_PATCH_DISABLE=no", DEFAULT),
        (
            "IPFS_KIT_DISABLE=true",
            Expect {
                ipfs: false,
                ..no_intercept
            },
        ),
        (
            "STORAGE_FORCE_LOCAL=YES",
            Expect {
                force_local: true,
                ..DEFAULT
            },
        ),
        ("STORAGE_FORCE_LOCAL=garbage", DEFAULT),
        ("CI=0", DEFAULT),
        (
            "CI=true IPFS_ACCELERATE_FORCE_INTERCEPT=1",
            Expect {
                intercept: true,
                ..ON_CI
            },
        ),
    ];
    cases.extend(CI_SYSTEMS.split_whitespace().map(|var| (var, ON_CI)));
    let home = tempfile::tempdir().unwrap();
    for (env, want) in cases {
        let mut cmd = cli(home.path());
        let s = json_of(cmd.args(["status", "--json"]).envs(vars(env)));
        let gate = &s["gate"];
        assert_eq!(gate["intercept"], want.intercept, "{env}: {gate}");
        assert_eq!(gate["ipfs"], want.ipfs, "{env}: {gate}");
        assert_eq!(gate["force_local"], want.force_local, "{env}: {gate}");
        assert_eq!(gate["ci"], want.ci, "{env}: {gate}");
        assert!(!gate["reasons"].as_array().unwrap().is_empty());
        assert_eq!(s["interception"]["enabled"], want.intercept);
        assert_eq!(s["interception"]["applied"], want.intercept);
        assert_eq!(
            s["interception"]["intercepted"]
                .as_array()
                .unwrap()
                .is_empty(),
            !want.intercept
        );
        assert_eq!(s["storage"]["mode"], "local", "no IPFS node answers here");
    }
}

#[test]
fn status_shape() {
    let home = tempfile::tempdir().unwrap();
    let s = json_of(cli(home.path()).args(["status", "--json"]));
    assert_eq!(
        s["storage"]["cache_dir"],
        home.path().join("cache").to_str().unwrap()
    );
    assert_eq!(s["storage"]["ipfs_api"], "http://127.0.0.1:9");
    let backends = &s["backends"];
    let names = pluck(backends, "name");
    for name in ["cpu", "cuda", "ort", "openvino"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
    let backend = |name: &str| status_backend(&s, name);
    let cpu = backend("cpu");
    assert_eq!(cpu["available"], true);
    // The kernels in use are named: the CPU's features as detected at run
    // time, and llama.cpp's ggml CPU module (the best this CPU runs).
    let detail = cpu["detail"].as_str().unwrap();
    assert!(detail.contains("this CPU has"), "{detail}");
    // ... and the kernel of f32 products of a few rows, as this CPU picks it.
    let matvec = match ipfs_accelerate_kernels::MatVecKernel::detect() {
        Ok(Some(kernel)) => format!("products of up to 16 rows: ours on {}", kernel.name()),
        _ => "products of up to 16 rows: candle's".to_owned(),
    };
    assert!(detail.contains(&matvec), "{detail}");
    let llama_cpp = backend("llamacpp");
    assert_eq!(llama_cpp["available"], true, "{llama_cpp}");
    let detail = llama_cpp["detail"].as_str().unwrap();
    assert!(detail.contains("ggml CPU kernels '"), "{detail}");
    assert!(!detail.contains("'unknown'"), "{detail}");
    // --cache-dir wins over IPFS_ACCELERATE_CACHE.
    let other = home.path().join("elsewhere");
    let s = json_of(
        cli(home.path())
            .args(["status", "--json", "--cache-dir"])
            .arg(&other),
    );
    assert_eq!(s["storage"]["cache_dir"], other.to_str().unwrap());
    // Human output works too.
    let out = run(cli(home.path()).arg("status"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("interception"));
}
