//! `status --json` reflects each gate variable.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

/// (env, intercept, ipfs, force_local, ci)
type Case = (
    &'static [(&'static str, &'static str)],
    bool,
    bool,
    bool,
    bool,
);

#[test]
fn gate_table() {
    let cases: &[Case] = &[
        (&[], true, true, false, false),
        (
            &[("TRANSFORMERS_PATCH_DISABLE", "1")],
            false,
            true,
            false,
            false,
        ),
        (
            &[("TRANSFORMERS_PATCH_DISABLE", "no")],
            true,
            true,
            false,
            false,
        ),
        (&[("IPFS_KIT_DISABLE", "true")], false, false, false, false),
        (&[("STORAGE_FORCE_LOCAL", "YES")], true, true, true, false),
        (
            &[("STORAGE_FORCE_LOCAL", "garbage")],
            true,
            true,
            false,
            false,
        ),
        (&[("CI", "true")], false, true, false, true),
        (&[("CI", "0")], true, true, false, false),
        (&[("GITHUB_ACTIONS", "true")], false, true, false, true),
        (&[("GITLAB_CI", "true")], false, true, false, true),
        (
            &[("JENKINS_URL", "http://ci.example/")],
            false,
            true,
            false,
            true,
        ),
        (&[("BUILDKITE", "true")], false, true, false, true),
        (&[("CIRCLECI", "true")], false, true, false, true),
        (&[("TRAVIS", "true")], false, true, false, true),
        (&[("TF_BUILD", "True")], false, true, false, true),
        (&[("TEAMCITY_VERSION", "2025.1")], false, true, false, true),
        (
            &[("BITBUCKET_BUILD_NUMBER", "42")],
            false,
            true,
            false,
            true,
        ),
        (
            &[("CI", "true"), ("IPFS_ACCELERATE_FORCE_INTERCEPT", "1")],
            true,
            true,
            false,
            true,
        ),
    ];
    let home = tempfile::tempdir().unwrap();
    for (env, intercept, ipfs, force_local, ci) in cases {
        let mut cmd = cli(home.path());
        cmd.args(["status", "--json"]);
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let s = json_ok(&run(&mut cmd));
        let gate = &s["gate"];
        assert_eq!(gate["intercept"], *intercept, "{env:?}: {gate}");
        assert_eq!(gate["ipfs"], *ipfs, "{env:?}: {gate}");
        assert_eq!(gate["force_local"], *force_local, "{env:?}: {gate}");
        assert_eq!(gate["ci"], *ci, "{env:?}: {gate}");
        assert!(!gate["reasons"].as_array().unwrap().is_empty());
        assert_eq!(s["interception"]["enabled"], *intercept);
        assert_eq!(s["interception"]["applied"], *intercept);
        assert_eq!(
            s["interception"]["intercepted"]
                .as_array()
                .unwrap()
                .is_empty(),
            !*intercept
        );
        assert_eq!(s["storage"]["mode"], "local", "no IPFS node answers here");
    }
}

#[test]
fn status_shape() {
    let home = tempfile::tempdir().unwrap();
    let s = json_ok(&run(cli(home.path()).args(["status", "--json"])));
    assert_eq!(
        s["storage"]["cache_dir"],
        home.path().join("cache").to_str().unwrap()
    );
    assert_eq!(s["storage"]["ipfs_api"], "http://127.0.0.1:9");
    let backends = s["backends"].as_array().unwrap();
    let names: Vec<&str> = backends
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for name in ["cpu", "cuda", "ort", "openvino"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let cpu = backends.iter().find(|b| b["name"] == "cpu").unwrap();
    assert_eq!(cpu["available"], true);
    // --cache-dir wins over IPFS_ACCELERATE_CACHE.
    let other = home.path().join("elsewhere");
    let s = json_ok(&run(cli(home.path())
        .args(["status", "--json", "--cache-dir"])
        .arg(&other)));
    assert_eq!(s["storage"]["cache_dir"], other.to_str().unwrap());
    // Human output works too.
    let out = run(cli(home.path()).arg("status"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("interception"));
}
