{
  # Sluice's native addon is Rust (native/, napi-rs), not C++: this file only exists so that
  # npm's own install step builds it. With a binding.gyp and no "install" script, `npm ci` and
  # `npm install` run `node-gyp rebuild` for this package; the single target below has no
  # sources (type "none", so no compiler and no Node headers are used) and one action that runs
  # native/build.js: `cargo build --release`, then a copy to build/Release/sluice_native.node.
  # The output named below is never created, so the action runs on every build and cargo
  # decides what is stale. A cargo failure fails the action, node-gyp, and the npm install.
  'targets': [
    {
      'target_name': 'sluice_native',
      'type': 'none',
      'actions': [
        {
          'action_name': 'cargo_build_sluice_native',
          'inputs': [ 'native/build.js' ],
          'outputs': [ '<(INTERMEDIATE_DIR)/cargo-always-runs.stamp' ],
          'action': [ 'node', '<(module_root_dir)/native/build.js' ],
          'message': 'Building the Rust addon (native/) with cargo',
        },
      ],
    },
  ],
}
