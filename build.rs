//! Release builds place the functions the service runs in its usual work next to each other, in
//! the order `layout/hot-functions.txt` lists them (written by `bench/hot_functions.py`).
//!
//! Why: the kernel maps a program's code into memory in chunks of 64 KiB or more, not page by
//! page, and the linker otherwise scatters the functions a request runs across nearly
//! all of the binary's 10 MiB of code, so nearly all of it stays resident. Listed first, they take
//! about a third of it, and the rest (errors, other stores, tools) is mapped only when it runs.
//! A function missing from the list, new or renamed since it was written, only lands among the
//! rest: a stale list costs memory, never correctness.

use std::env;
use std::path::Path;

const LIST: &str = "layout/hot-functions.txt";

fn main() {
    println!("cargo::rerun-if-changed={LIST}");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    // The option is lld's, Rust's own linker for this target (the default since Rust 1.90);
    // the GNU linker and mold do not know it. A build told to link otherwise (lld switched off,
    // another `-fuse-ld`, a linker of its own) links in the usual order instead.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = flags.contains("linker-features=-lld")
        || flags.contains("fuse-ld")
        || env::var_os("RUSTC_LINKER").is_some();
    let lld = !other_linker
        && env::var("TARGET").is_ok_and(|target| target == "x86_64-unknown-linux-gnu");
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join(LIST);
    if release && lld && list.exists() {
        let bin = "cargo::rustc-link-arg-bin=mondiapay-token-proxy";
        println!("{bin}=-Wl,--symbol-ordering-file={}", list.display());
        // Functions of the list that this build does not have (see above) are no error.
        println!("{bin}=-Wl,--no-warn-symbol-ordering");
    }
}
