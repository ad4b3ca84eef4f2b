//! The Kubernetes manifests, proven offline (kind cannot run here): every kustomization
//! renders, and deploy/k8s/validate.py checks the rendering against the Kubernetes
//! schemas and the CRD schemas in deploy/k8s/crds, the restricted Pod Security Standard,
//! the references between objects, the Fluent Bit and collector configs, and that the
//! compose cluster runs the same way. Its self-test breaks copies in ways each check
//! must catch.

use std::process::Command;

use cluster_tests::docker::{ok, repo_root};
use cluster_tests::prometheus::require_program;

#[test]
fn every_kustomization_renders() {
    require_program("kubectl", "kubectl (on the machine image)");
    for dir in [
        "deploy/k8s/base",
        "deploy/k8s/logging",
        "deploy/k8s/overlays/kind",
    ] {
        let out = Command::new("kubectl")
            .args(["kustomize"])
            .arg(repo_root().join(dir))
            .output()
            .expect("kubectl runs");
        let text = ok("kubectl kustomize", out, &[dir]);
        assert!(text.contains("\nkind: "), "{dir} rendered nothing");
    }
}

#[test]
fn the_manifests_validate_offline_and_match_the_compose_cluster() {
    require_program("kubectl", "kubectl (on the machine image)");
    let python = require_program("python3", "python3");
    let has_validator = Command::new(&python)
        .args(["-c", "import kubernetes_validate, jsonschema, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_validator,
        "python3 lacks kubernetes-validate: pip install kubernetes-validate==1.37.0 \
         (scripts/install-deps.sh does)"
    );
    let out = Command::new(&python)
        .arg(repo_root().join("deploy/k8s/validate.py"))
        .arg("--self-test")
        .output()
        .expect("validate.py runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "validate.py found problems:\n{text}");
    assert!(text.contains(": 0 problems"), "{text}");
    assert!(
        text.contains("self-test: 0 breakages went unnoticed"),
        "{text}"
    );
}
