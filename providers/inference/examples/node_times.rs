//! Where tract's time goes, per operator: loads a model as the provider does (optimised, with
//! edgecell's kernels swapped in; `EDGECELL_NO_FUSE=1` keeps tract's 3×3 convolutions and max-pool pads), runs it `N` times on zeros on one thread and prints the
//! total time per operator name and the slowest nodes.
//!
//! `cargo run --release -p edgecell-inference --example node_times -- MODEL.onnx [N]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: node_times MODEL.onnx [RUNS]");
    let runs: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let mut typed = tract_onnx::onnx()
        .model_for_path(&path)?
        .into_typed()?
        .into_decluttered()?;
    if std::env::var_os("EDGECELL_NO_FUSE").is_none() {
        let fused = edgecell_inference::tract_ops::fuse(&mut typed)?;
        println!("fused: {fused:?}");
    }
    let mut typed = typed.into_optimized()?;
    let swapped = edgecell_inference::tract_ops::accelerate(&mut typed)?;
    println!("swapped: {swapped:?}");
    let plan = typed.into_runnable()?;
    let inputs: TVec<TValue> = plan
        .model()
        .input_outlets()?
        .iter()
        .map(|o| {
            let fact = plan.model().outlet_fact(*o).unwrap();
            let shape = fact.shape.as_concrete().unwrap().to_vec();
            Tensor::zero::<f32>(&shape).unwrap().into_tvalue()
        })
        .collect();
    let mut per_node: HashMap<usize, Duration> = HashMap::new();
    let mut state = SimpleState::new(&plan)?;
    let mut wall = Duration::ZERO;
    for i in 0..=runs {
        let t = Instant::now();
        state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, input| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
            if i > 0 {
                *per_node.entry(node.id).or_default() += t.elapsed();
            }
            r
        })?;
        if i > 0 {
            wall += t.elapsed();
        }
    }
    let model = plan.model();
    let mut per_op: HashMap<String, (Duration, usize)> = HashMap::new();
    for (&id, d) in &per_node {
        let e = per_op
            .entry(model.node(id).op().name().to_string())
            .or_default();
        e.0 += *d;
        e.1 += 1;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(runs);
    println!(
        "frame: {:.2} ms wall, {:.2} ms in nodes",
        ms(wall),
        ms(per_node.values().sum())
    );
    let mut ops: Vec<_> = per_op.into_iter().collect();
    ops.sort_by_key(|(_, (d, _))| std::cmp::Reverse(*d));
    for (name, (d, n)) in ops.iter().take(15) {
        println!("{:>8.2} ms  {n:>4} × {name}", ms(*d));
    }
    let mut nodes: Vec<_> = per_node.into_iter().collect();
    nodes.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    for (id, d) in nodes.iter().take(60) {
        let node = model.node(*id);
        let fact = model.outlet_fact(OutletId::new(*id, 0))?;
        println!(
            "{:>8.2} ms  {} {}  -> {:?}",
            ms(*d),
            node.op().name(),
            node.name,
            fact.shape
        );
    }
    Ok(())
}
