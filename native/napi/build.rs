//! napi-rs's link setup, plus src/uws20/socket.cc compiled against the headers of the Node the
//! addon is built for: `SLUICE_NODE_INCLUDE` (native/build.js sets it from the Node running
//! it), else `<prefix>/include/node` of the `node` on PATH. The V8 defines follow that Node's
//! config.gypi the way node-gyp's common.gypi derives them: they change how V8's inline code
//! lays out objects, so they must be the runtime's.

use std::path::PathBuf;
use std::process::Command;

fn node_include_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_NODE_INCLUDE") {
        return PathBuf::from(dir);
    }
    let out = Command::new("node")
        .args(["-p", "require('path').resolve(process.execPath, '..', '..', 'include', 'node')"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run node to find its headers ({e}); set SLUICE_NODE_INCLUDE to Node's include/node folder"));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `'name': value,` from config.gypi (0 when absent).
fn gypi_flag(config: &str, name: &str) -> bool {
    let key = format!("'{name}':");
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix(&key))
        .is_some_and(|v| v.trim().trim_end_matches(',').trim() == "1")
}

fn main() {
    napi_build::setup();

    let include = node_include_dir();
    println!("cargo:rerun-if-env-changed=SLUICE_NODE_INCLUDE");
    println!("cargo:rerun-if-changed=src/uws20/socket.cc");
    let v8h = include.join("v8.h");
    let gypi = include.join("config.gypi");
    println!("cargo:rerun-if-changed={}", gypi.display());
    if !v8h.exists() {
        panic!(
            "Node's C++ headers are missing: no {} (they come with Node: the nodejs package, the official tarball, nvm). Set SLUICE_NODE_INCLUDE to Node's include/node folder.",
            v8h.display()
        );
    }
    let config = std::fs::read_to_string(&gypi)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", gypi.display()));
    let on = |name: &str| gypi_flag(&config, name);

    let mut build = cc::Build::new();
    // -isystem: V8's headers warn under -Wextra; this file's own code should not.
    build
        .cpp(true)
        .std("c++17")
        .file("src/uws20/socket.cc")
        .flag("-isystem")
        .flag(include.to_str().expect("Node's include path is UTF-8"))
        .warnings(true);
    let compress = on("v8_enable_pointer_compression");
    let shared_cage = on("v8_enable_pointer_compression_shared_cage");
    let defines = [
        ("V8_ENABLE_CHECKS", on("v8_enable_v8_checks")),
        ("V8_COMPRESS_POINTERS", compress),
        ("V8_COMPRESS_POINTERS_IN_SHARED_CAGE", shared_cage),
        (
            "V8_COMPRESS_POINTERS_IN_ISOLATE_CAGE",
            compress && !shared_cage,
        ),
        (
            "V8_31BIT_SMIS_ON_64BIT_ARCH",
            compress || on("v8_enable_31bit_smis_on_64bit_arch"),
        ),
        ("V8_ENABLE_SANDBOX", on("v8_enable_sandbox")),
        (
            "V8_EXTERNAL_CODE_SPACE",
            on("v8_enable_external_code_space"),
        ),
        ("V8_MAP_PACKING", on("v8_enable_map_packing")),
        ("V8_ENABLE_DIRECT_LOCAL", on("v8_enable_direct_local")),
    ];
    for (name, enabled) in defines {
        if enabled {
            build.define(name, None);
        }
    }
    build.compile("sluice_uws_socket");
}
