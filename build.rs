//! Builds the MPI shim (`src/mpi/shim.c`) when the `mpi` feature is on;
//! does nothing otherwise, so `cargo build` needs no MPI.
//!
//! The shim is compiled with the MPI's own compiler wrapper (`mpicc`, or
//! the one `MPICC` names), which knows its include paths; the link flags
//! come from the same wrapper: `-showme:link` on Open MPI, `-link_info` on
//! MPICH.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_MPI").is_none() {
        return;
    }
    mpi::build();
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::process::Command;

    pub(crate) fn build() {
        println!("cargo:rerun-if-changed=src/mpi/shim.c");
        println!("cargo:rerun-if-env-changed=MPICC");
        let mpicc = std::env::var("MPICC").unwrap_or_else(|_| String::from("mpicc"));
        let flags = link_flags(&mpicc).unwrap_or_else(|| {
            panic!(
                "the `mpi` feature needs an MPI library and its compiler wrapper `{mpicc}` \
                 (Debian: apt-get install libopenmpi-dev openmpi-bin); set MPICC to use another"
            )
        });
        cc::Build::new()
            .compiler(&mpicc)
            .file("src/mpi/shim.c")
            .warnings(true)
            .compile("concurrent_futures_mpi_shim");
        for flag in &flags {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = flag.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={lib}");
            } else if flag.starts_with("-Wl,") {
                println!("cargo:rustc-link-arg={flag}");
            }
        }
    }

    /// The wrapper's link flags, split into words.
    fn link_flags(mpicc: &str) -> Option<Vec<String>> {
        let run = |arg: &str| {
            Command::new(mpicc)
                .arg(arg)
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        if let Some(text) = run("-showme:link") {
            return Some(text.split_whitespace().map(String::from).collect());
        }
        // MPICH prints the whole command: the compiler, then its flags.
        let text = run("-link_info")?;
        Some(text.split_whitespace().skip(1).map(String::from).collect())
    }
}

#[cfg(not(feature = "mpi"))]
mod mpi {
    pub(crate) fn build() {}
}
