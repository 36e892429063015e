//! Runs the shared domain kernels inside a component (see `crates/kernels`).

// The generated guest glue is FFI with the component ABI and needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "edgecell:actors/kernels",
        generate_all,
    });
}

struct Kernels;

impl bindings::exports::edgecell::actors::kernel_api::Guest for Kernels {
    fn run(name: String, iterations: u32) -> Result<f64, String> {
        edgecell_kernels::run(&name, iterations).map_err(|e| e.to_string())
    }
}

// `export!` emits the ABI entry points, which are `unsafe extern` functions.
#[allow(unsafe_code)]
mod exports {
    use super::Kernels;
    crate::bindings::export!(Kernels with_types_in crate::bindings);
}
