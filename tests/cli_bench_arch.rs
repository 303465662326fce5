//! `backprop bench` on the models of layers: one JSON object per config with the keys
//! `bench/compare.py` reads, GFLOP/s from the multiply-adds that `bench/pytorch_arch.py`
//! counts, and `--config arch` running the three.

use std::process::Command;

fn bench(config: &str) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args([
            "bench",
            "--config",
            config,
            "--seconds",
            "0.01",
            "--repeats",
            "1",
        ])
        .args(["--threads", "1", "--json"])
        .output()
        .expect("the binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn arch_configs_print_the_shared_keys_and_their_flop_rate() {
    let lines = bench("arch");
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["config"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lenet5", "convnet", "char-lstm"]);
    let macs = [416_520.0, 11_992_448.0, 11_884_800.0];
    for (l, macs) in lines.iter().zip(macs) {
        assert_eq!(
            (l["threads"].as_u64(), l["impl"].as_str()),
            (Some(1), Some("backprop"))
        );
        let train = l["train_samples_per_sec"].as_f64().unwrap();
        let infer = l["infer_samples_per_sec"].as_f64().unwrap();
        assert!(train > 0.0 && infer > 0.0, "{l}");
        // 6 FLOP per multiply-add for a training step, 2 for inference.
        let gflops = l["train_gflops"].as_f64().unwrap();
        assert!(
            (gflops - train * 6.0 * macs / 1e9).abs() <= 1e-9 * gflops,
            "{l}"
        );
        let gflops = l["infer_gflops"].as_f64().unwrap();
        assert!(
            (gflops - infer * 2.0 * macs / 1e9).abs() <= 1e-9 * gflops,
            "{l}"
        );
        assert!(l["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    }
    // convnet's 1.2 M parameters and its 64 x 32 x 26 x 26 activations need more memory
    // than LeNet-5's 62 thousand.
    assert!(lines[1]["peak_rss_bytes"].as_u64() > lines[0]["peak_rss_bytes"].as_u64());
}

#[test]
fn one_arch_config_alone() {
    let lines = bench("lenet5");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["config"], "lenet5");
}
