//! `edgecell fusion …`: the fusion crate's replay and orientation filter from the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edgecell_fusion::ahrs::{AhrsSettings, ahrs_from_csv};
use edgecell_fusion::{LocalizerConfig, preset, replay_bag};

#[derive(Debug, clap::Subcommand)]
pub enum FusionCmd {
    /// Replay a ROS1 bag through the localizer; prints the final pose as JSON (m, rad).
    ReplayBag {
        bag: PathBuf,
        /// Localizer configuration (TOML).
        #[arg(long, conflicts_with = "preset")]
        config: Option<PathBuf>,
        /// A built-in preset: robot-localization-test1 | robot-localization-test2.
        #[arg(long)]
        preset: Option<String>,
        /// Write the trajectory (time,x,y,z,roll,pitch,yaw at the filter frequency) here.
        #[arg(long)]
        trajectory: Option<PathBuf>,
    },
    /// Orientation filter over an x-io style CSV; prints roll/pitch/yaw (deg) per second of data.
    Ahrs {
        csv: PathBuf,
        /// Ignore the magnetometer columns (IMU-only mode).
        #[arg(long)]
        no_mag: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

pub fn run(cmd: FusionCmd) -> Result<()> {
    match cmd {
        FusionCmd::ReplayBag { bag, config, preset: name, trajectory } => {
            let cfg = match (config, name) {
                (Some(path), None) => {
                    let text = String::from_utf8(read(&path)?).context("config is not UTF-8")?;
                    LocalizerConfig::from_toml(&text).with_context(|| format!("config {}", path.display()))?
                }
                (None, Some(name)) => preset(&name)?,
                _ => bail!("give --config FILE.toml or --preset NAME ({})", edgecell_fusion::PRESET_NAMES.join(", ")),
            };
            let out = replay_bag(&read(&bag)?, &cfg).with_context(|| format!("replaying {}", bag.display()))?;
            for (t, why) in &out.rejected {
                eprintln!("rejected message at {t:.3} s: {why}");
            }
            if let Some(path) = trajectory {
                std::fs::write(&path, out.trajectory_csv()).with_context(|| format!("writing {}", path.display()))?;
            }
            println!("{}", serde_json::to_string(&out.final_pose)?);
        }
        FusionCmd::Ahrs { csv, no_mag, json } => {
            let rows = ahrs_from_csv(read(&csv)?.as_slice(), AhrsSettings::default(), None, !no_mag)?;
            if !json {
                println!("{:>10} {:>9} {:>9} {:>9}", "time_s", "roll_deg", "pitch_deg", "yaw_deg");
            }
            for e in rows {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!("{:>10.3} {:>9.4} {:>9.4} {:>9.4}", e.time, e.roll, e.pitch, e.yaw);
                }
            }
        }
    }
    Ok(())
}
