//! `status`.

use super::Context;
use crate::output::{print_json, print_text};

pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let loader = ctx.loader()?;
    let status = ipfs_accelerate::status(&loader)?;
    if ctx.json {
        return print_json(&status);
    }
    let mut text = String::new();
    let g = &status.gate;
    text.push_str(&format!(
        "gate: intercept={} ipfs={} force_local={} ci={}\n",
        g.intercept, g.ipfs, g.force_local, g.ci
    ));
    for reason in &g.reasons {
        text.push_str(&format!("  - {reason}\n"));
    }
    for warning in &g.warnings {
        text.push_str(&format!("  ! {warning}\n"));
    }
    let i = &status.interception;
    text.push_str(&format!(
        "interception: enabled={} applied={} kinds=[{}]\n",
        i.enabled,
        i.applied,
        i.intercepted.join(", ")
    ));
    let s = &status.storage;
    text.push_str(&format!(
        "storage: {:?} mode, cache {}, Hub cache {}, IPFS API {}\n",
        s.mode,
        s.cache_dir.display(),
        s.hub_cache_dir.display(),
        s.ipfs_api.as_deref().unwrap_or("(none configured)")
    ));
    text.push_str("backends:\n");
    for b in &status.backends {
        let mark = if b.available { "yes" } else { "no " };
        text.push_str(&format!("  {:<9} {mark}  {}\n", b.name, b.detail));
    }
    text.push_str("model families:\n");
    for f in &status.families {
        text.push_str(&format!("  {:<11} {}\n", f.model_type, f.skill.name()));
    }
    let e = &status.onnx_export;
    text.push_str(&format!(
        "onnx export on first use: {} (exporter v{}: {}), {} cached\n",
        if e.enabled { "on" } else { "off" },
        e.exporter_version,
        e.exportable.join(", "),
        e.cached.len()
    ));
    for c in &e.cached {
        match &c.provenance {
            Some(p) => text.push_str(&format!(
                "  onnx-export@{}  {} ({}), {:.1} s, {}\n",
                c.key,
                p.model,
                p.model_type,
                p.export_seconds,
                p.graphs.join(", ")
            )),
            None => text.push_str(&format!(
                "  onnx-export@{}  (no readable export.json)\n",
                c.key
            )),
        }
    }
    print_text(text.trim_end())
}
