//! The `backprop bench` harness: the speed table's configs, the synthetic data, the timer
//! and the JSON line shared with `bench/pytorch_mlp.py`.

use crate::bench::harness::{run, BenchConfig, BenchError, BenchResult, SyntheticData, Timing};
use backprop::network::{Activation, Cost};

#[test]
fn config_table_is_the_speed_tables() {
    let n = BenchConfig::NIELSEN;
    assert_eq!(
        (
            n.name,
            n.sizes,
            n.hidden,
            n.output,
            n.cost,
            n.learning_rate,
            n.batch
        ),
        (
            "nielsen",
            &[784, 30, 10][..],
            Activation::Sigmoid,
            Activation::Sigmoid,
            Cost::Quadratic,
            3.0,
            10
        )
    );
    let s = BenchConfig::SMALL;
    assert_eq!(
        (
            s.name,
            s.sizes,
            s.hidden,
            s.output,
            s.cost,
            s.learning_rate,
            s.batch
        ),
        (
            "small",
            &[784, 128, 64, 10][..],
            Activation::Relu,
            Activation::Softmax,
            Cost::LogLikelihood,
            0.1,
            64
        )
    );
    let w = BenchConfig::WIDE;
    assert_eq!(
        (
            w.name,
            w.sizes,
            w.hidden,
            w.output,
            w.cost,
            w.learning_rate,
            w.batch
        ),
        (
            "wide",
            &[784, 1024, 1024, 10][..],
            Activation::Relu,
            Activation::Softmax,
            Cost::LogLikelihood,
            0.1,
            256
        )
    );
    assert_eq!(
        BenchConfig::NIELSEN.activations(),
        vec![Activation::Sigmoid; 2]
    );
    assert_eq!(
        BenchConfig::WIDE.activations(),
        vec![Activation::Relu, Activation::Relu, Activation::Softmax]
    );
}

#[test]
fn parameter_and_flop_counts() {
    // 784*1024 + 1024 + 1024*1024 + 1024 + 1024*10 + 10
    assert_eq!(BenchConfig::WIDE.parameters(), 1_863_690);
    assert_eq!(BenchConfig::SMALL.parameters(), 109_386);
    // forward 2(784*1024 + 1024*1024 + 1024*10) = 3,723,264; Equation 1 the same;
    // Equation 3 for the two upper layers 2(1024*1024 + 1024*10) = 2,117,632.
    assert_eq!(BenchConfig::WIDE.train_flops_per_example(), 9_564_160);
}

#[test]
fn configs_parse_by_name_and_all() {
    for c in BenchConfig::ALL {
        assert_eq!(c.name.parse::<BenchConfig>().unwrap(), c);
        assert_eq!(c.name.to_uppercase().parse::<BenchConfig>().unwrap(), c);
        assert_eq!(c.to_string(), c.name);
    }
    assert_eq!(
        BenchConfig::parse_list("all").unwrap(),
        BenchConfig::ALL.to_vec()
    );
    assert_eq!(
        "medium".parse::<BenchConfig>(),
        Err(BenchError::UnknownConfig {
            name: "medium".into()
        })
    );
    assert!("all".parse::<BenchConfig>().is_err());
    let msg = BenchConfig::parse_list("").unwrap_err().to_string();
    assert!(msg.contains("nielsen, small, wide or all"), "{msg}");
}

#[test]
fn synthetic_data_shape_range_and_determinism() {
    let data = SyntheticData::standard(42);
    assert_eq!(data.len(), 10_240);
    assert_eq!((data.inputs.rows(), data.inputs.cols()), (10_240, 784));
    assert_eq!((data.targets.rows(), data.targets.cols()), (10_240, 10));
    let x = data.inputs.as_slice();
    assert!(x.iter().all(|&v| (0.0..1.0).contains(&v)));
    // Uniform on [0, 1): mean 1/2 and variance 1/12, to within a few standard errors
    // over 8 million values (standard error of the mean ~1e-4).
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
    assert!((mean - 0.5).abs() < 1e-3, "mean {mean}");
    assert!((var - 1.0 / 12.0).abs() < 1e-3, "variance {var}");
    // Every class appears about 1,024 times; targets are the one-hot labels.
    let mut counts = [0usize; 10];
    for (row, &label) in data.labels.iter().enumerate() {
        counts[label] += 1;
        let y = data.targets.row(row);
        assert_eq!(y.iter().sum::<f32>(), 1.0);
        assert_eq!(y[label], 1.0);
    }
    assert!(
        counts.iter().all(|&c| (850..1200).contains(&c)),
        "{counts:?}"
    );
    // Same seed, same data; another seed, other data.
    assert_eq!(SyntheticData::standard(42), data);
    assert_ne!(SyntheticData::standard(43).inputs, data.inputs);
}

#[test]
fn synthetic_data_refuses_bad_sizes() {
    assert_eq!(
        SyntheticData::new(0, 784, 10, 1),
        Err(BenchError::EmptyData { what: "example" })
    );
    assert_eq!(
        SyntheticData::new(10, 0, 10, 1),
        Err(BenchError::EmptyData { what: "feature" })
    );
    assert_eq!(
        SyntheticData::new(10, 784, 0, 1),
        Err(BenchError::EmptyData { what: "class" })
    );
    // Refused before any allocation is attempted.
    assert!(matches!(
        SyntheticData::new(usize::MAX / 2, 784, 10, 1),
        Err(BenchError::DataTooLarge { .. })
    ));
}

#[test]
fn batches_wrap_around_whole_batches() {
    let data = SyntheticData::new(100, 4, 3, 5).unwrap();
    assert_eq!(data.batches(32).unwrap(), 3);
    let b = data.batch(4, 32).unwrap(); // 4 mod 3 = batch 1: rows 32..64
    assert_eq!(b.n, 32);
    assert_eq!(b.x, &data.inputs.as_slice()[32 * 4..64 * 4]);
    assert_eq!(b.y, &data.targets.as_slice()[32 * 3..64 * 3]);
    assert_eq!(b.labels, &data.labels[32..64]);
    assert!(matches!(
        data.batch(0, 0),
        Err(BenchError::BadBatch {
            batch: 0,
            examples: 100
        })
    ));
    assert!(matches!(
        data.batch(0, 101),
        Err(BenchError::BadBatch { .. })
    ));
}

#[test]
fn run_calls_both_steps_and_serialises_the_shared_keys() {
    let data = SyntheticData::new(64, 784, 10, 3).unwrap();
    let timing = Timing {
        seconds_per_repeat: 0.002,
        repeats: 5,
        warmup_steps: 3,
        retries: 2,
    };
    let config = BenchConfig::NIELSEN;
    // The state both steps share: (train calls, infer calls).
    let mut calls = (0usize, 0usize);
    let result = run(
        &config,
        2,
        &timing,
        &mut calls,
        |calls, i| {
            // A real (tiny) amount of work on the batch, so the timer has something to time.
            let b = data.batch(i, config.batch).unwrap();
            std::hint::black_box(b.x.iter().sum::<f32>());
            calls.0 += 1;
        },
        |calls, i| {
            std::hint::black_box(data.batch(i, config.batch).unwrap().x[0]);
            calls.1 += 1;
        },
    )
    .unwrap();
    let (trained, inferred) = calls;
    assert!(trained >= 3 + 5 && inferred >= 3 + 5);
    assert!(result.redone_repeats <= 4 && result.contended_repeats <= 10);
    assert_eq!(result.train_repeats_samples_per_sec.len(), 5);
    assert!(result.train_samples_per_sec > 0.0 && result.infer_samples_per_sec > 0.0);
    assert_eq!(result.threads, 2);
    assert_eq!(result.implementation, "backprop");
    if cfg!(target_os = "linux") {
        assert!(result.peak_rss_bytes.unwrap() > 1 << 20);
    }

    let line = result.to_json_line();
    assert!(!line.contains('\n'));
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    let obj = json.as_object().unwrap();
    for key in [
        "config",
        "threads",
        "train_samples_per_sec",
        "infer_samples_per_sec",
        "peak_rss_bytes",
        "impl",
        "repeats",
        "redone_repeats",
        "contended_repeats",
        "cpu_model",
        "logical_cores",
    ] {
        assert!(obj.contains_key(key), "missing {key} in {line}");
    }
    assert_eq!(obj["config"], "nielsen");
    assert_eq!(obj["impl"], "backprop");
    assert_eq!(obj["threads"], 2);
    // serde_json's default float parser may be off by an ulp: compare relatively.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    let train = obj["train_samples_per_sec"].as_f64().unwrap();
    assert!(close(train, result.train_samples_per_sec));
    let back: BenchResult = serde_json::from_str(&line).unwrap();
    assert!(close(
        back.infer_samples_per_sec,
        result.infer_samples_per_sec
    ));
    assert_eq!(
        (
            back.config.as_str(),
            back.threads,
            back.peak_rss_bytes,
            back.repeats
        ),
        ("nielsen", 2, result.peak_rss_bytes, 5)
    );
    let text = result.to_string();
    assert!(text.starts_with("nielsen  threads 2  train "), "{text}");
}

#[test]
fn runqueue_wait_is_read_on_linux() {
    let before = crate::bench::harness::runqueue_wait_seconds();
    // Kernels built without scheduler statistics have no schedstat files.
    if std::path::Path::new("/proc/self/schedstat").exists() {
        let before = before.expect("/proc/self/task/*/schedstat");
        std::thread::yield_now();
        let after = crate::bench::harness::runqueue_wait_seconds().unwrap();
        assert!(before >= 0.0 && after >= before, "{before} -> {after}");
    }
}

// The examples that the harness's doc comments had while it was part of the library.

#[test]
fn doc_example_1_module() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::{run, BenchConfig, SyntheticData, Timing};

    let config = BenchConfig::NIELSEN;
    let data = SyntheticData::new(1_000, 784, 10, 42)?;
    let timing = Timing {
        seconds_per_repeat: 0.001,
        repeats: 5,
        warmup_steps: 1,
        retries: 0,
    };
    // Stand-ins for a network's steps: a "model" of one weight per feature, trained
    // toward the mean input of each mini-batch, and read back for inference.
    let mut model = vec![0.0f32; 784];
    let result = run(
        &config,
        1,
        &timing,
        &mut model,
        |w, i| {
            let b = data.batch(i, config.batch).unwrap();
            for (k, wk) in w.iter_mut().enumerate() {
                *wk -= 0.1 * (*wk - b.x[k]);
            }
        },
        |w, i| {
            let b = data.batch(i, config.batch).unwrap();
            std::hint::black_box(b.x.iter().zip(w.iter()).map(|(x, w)| x * w).sum::<f32>());
        },
    )?;
    assert_eq!(result.config, "nielsen");
    assert!(result.train_samples_per_sec > 0.0);
    Ok(())
}

#[test]
fn doc_example_2_activations() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::BenchConfig;
    use backprop::network::Activation::{Relu, Softmax};
    assert_eq!(BenchConfig::SMALL.activations(), vec![Relu, Relu, Softmax]);
    Ok(())
}

#[test]
fn doc_example_3_parameters() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::BenchConfig;
    assert_eq!(
        BenchConfig::NIELSEN.parameters(),
        784 * 30 + 30 + 30 * 10 + 10
    );
    Ok(())
}

#[test]
fn doc_example_4_train_flops_per_example() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::BenchConfig;
    // forward 2(784*30 + 30*10), Equation 1 the same, Equation 3 only 2*30*10
    assert_eq!(
        BenchConfig::NIELSEN.train_flops_per_example(),
        4 * 23_820 + 600
    );
    Ok(())
}

#[test]
fn doc_example_5_parse_list() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::BenchConfig;
    assert_eq!(BenchConfig::parse_list("all")?.len(), 3);
    assert_eq!(BenchConfig::parse_list("wide")?, vec![BenchConfig::WIDE]);
    assert!(BenchConfig::parse_list("huge").is_err());
    Ok(())
}

#[test]
fn doc_example_6_archbenchconfig() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::ArchBenchConfig;
    let lenet = ArchBenchConfig::LENET5;
    assert_eq!(lenet.arch().layers().len(), 13);
    // conv1 28*28*6*25 + conv2 10*10*16*150 + 400*120 + 120*84 + 84*10
    assert_eq!(lenet.macs_per_sample(), 416_520);
    assert_eq!(ArchBenchConfig::CONVNET.macs_per_sample(), 11_992_448);
    // 50 steps x 4 x 128 x (64 + 128) + 50 x 4 x 128 x 256 + 50 x 128 x 65
    assert_eq!(ArchBenchConfig::CHAR_LSTM.macs_per_sample(), 11_884_800);
    Ok(())
}

#[test]
fn doc_example_7_new() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::SyntheticSequences;
    let s = SyntheticSequences::new(100, 50, 65, 1)?;
    let (x, y) = s.batch(1, 10)?;
    assert_eq!((x.len(), y.len()), (500, 500));
    assert!(x
        .iter()
        .all(|&v| (0.0..65.0).contains(&v) && v.fract() == 0.0));
    Ok(())
}

#[test]
fn doc_example_8_new() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::SyntheticData;
    let data = SyntheticData::new(SyntheticData::EXAMPLES, 784, 10, 7)?;
    assert_eq!((data.inputs.rows(), data.inputs.cols()), (10_240, 784));
    assert_eq!(data.targets.row(3)[data.labels[3]], 1.0);
    Ok(())
}

#[test]
fn doc_example_9_batch() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::SyntheticData;
    let data = SyntheticData::new(25, 3, 2, 1)?;
    // 25 examples make 2 whole batches of 10; batch 2 is batch 0 again.
    assert_eq!(data.batch(2, 10)?, data.batch(0, 10)?);
    assert_eq!(data.batch(1, 10)?.x, &data.inputs.as_slice()[30..60]);
    Ok(())
}

#[test]
fn doc_example_10_median() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::median;
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[]), None);
    Ok(())
}

#[test]
fn doc_example_11_measure() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::{measure, Timing};
    let timing = Timing {
        seconds_per_repeat: 0.001,
        repeats: 3,
        warmup_steps: 2,
        retries: 0,
    };
    let mut calls = 0;
    let stats = measure(&timing, 10, |_| calls += 1)?;
    assert_eq!(stats.per_repeat.len(), 3);
    assert!(stats.min <= stats.median && stats.median <= stats.max);
    assert_eq!(calls as u64, 2 + stats.steps.iter().sum::<u64>());
    Ok(())
}

#[test]
fn doc_example_12_peak_rss_bytes() -> Result<(), Box<dyn std::error::Error>> {
    let rss = crate::bench::harness::peak_rss_bytes();
    if cfg!(target_os = "linux") {
        assert!(rss.unwrap() > 0);
    }
    Ok(())
}

#[test]
fn doc_example_13_detect() -> Result<(), Box<dyn std::error::Error>> {
    let m = crate::bench::harness::Machine::detect();
    assert!(m.logical_cores >= 1);
    Ok(())
}

#[test]
fn doc_example_run_dp() -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::harness::{run_dp, DpSettings};
    let timing = Timing {
        seconds_per_repeat: 0.001,
        repeats: 3,
        warmup_steps: 1,
        retries: 0,
    };
    let dp = DpSettings {
        noise_multiplier: 1.0,
        max_grad_norm: 1.0,
        secure_noise: false,
    };
    let mut work = 0u64;
    let r = run_dp(
        &BenchConfig::NIELSEN,
        1,
        &timing,
        dp,
        &mut work,
        |w, _| *w = std::hint::black_box(*w + 1),
        |w, _| *w = std::hint::black_box(*w + 2),
        |w, _| *w = std::hint::black_box(*w + 3),
    )?;
    assert_eq!(r.ordinary.config, "nielsen");
    assert_eq!(r.dp_train_repeats_samples_per_sec.len(), 3);
    assert!(
        (r.dp_ratio - r.dp_train_samples_per_sec / r.ordinary.train_samples_per_sec).abs() < 1e-12
    );
    Ok(())
}
