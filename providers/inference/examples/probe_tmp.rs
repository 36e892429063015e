#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let path = std::env::args().nth(1).unwrap();
    let typed = tract_onnx::onnx()
        .model_for_path(&path)?
        .into_typed()?
        .into_decluttered()?;
    for n in typed.nodes() {
        if n.name.starts_with("Conv__156") || n.name.starts_with("Conv__176") {
            let ins: Vec<String> = n
                .inputs
                .iter()
                .map(|i| {
                    format!(
                        "{}:{:?}",
                        typed.node(i.node).op().name(),
                        typed.outlet_fact(*i).unwrap().shape
                    )
                })
                .collect();
            let s = format!("{:?}", n.op());
            println!(
                "{} [{}] {} <- {:?}\n",
                n.name,
                n.op().name(),
                &s[..s.len().min(300)],
                ins
            );
        }
    }
    Ok(())
}
