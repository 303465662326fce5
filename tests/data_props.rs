//! Properties of the loaders and the split over random inputs.

use backprop::data::csv::parse_labeled_csv;
use backprop::data::idx::{idx_dataset, parse_idx};
use backprop::data::{Dataset, Scaling, ScalingKind};
use proptest::prelude::*;
use std::path::Path;

fn labelled() -> impl Strategy<Value = Dataset> {
    (1usize..6, 1usize..40, 1u32..5).prop_flat_map(|(features, n, classes)| {
        (
            proptest::collection::vec(-1e3f32..1e3, n * features),
            proptest::collection::vec(0..classes, n),
        )
            .prop_map(move |(x, y)| Dataset::new(x, y, features).unwrap())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Writing a data set as IDX (any of several shapes) and reading it back is exact.
    #[test]
    fn idx_round_trip(n in 0usize..20, rows in 1u32..5, cols in 1u32..5, seed in any::<u64>()) {
        let count = n * (rows * cols) as usize;
        let pixels: Vec<u8> = (0..count).map(|i| (seed.wrapping_mul(i as u64 + 7) >> 13) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let mut img = vec![0, 0, 8, 3];
        for d in [n as u32, rows, cols] { img.extend_from_slice(&d.to_be_bytes()); }
        img.extend_from_slice(&pixels);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend_from_slice(&(n as u32).to_be_bytes());
        lab.extend_from_slice(&labels);
        let p = Path::new("p");
        let d = idx_dataset(&parse_idx(&img, p).unwrap(), p, &parse_idx(&lab, p).unwrap(), p).unwrap();
        prop_assert_eq!(d.len(), n);
        prop_assert_eq!(d.inputs, pixels.iter().map(|&b| b as f32).collect::<Vec<_>>());
        prop_assert_eq!(d.labels, labels.iter().map(|&b| b as u32).collect::<Vec<_>>());
        // Any truncation is refused.
        if !img.is_empty() {
            let cut = (seed as usize) % img.len();
            prop_assert!(parse_idx(&img[..cut], p).is_err());
        }
    }

    /// A data set written as CSV (with Rust's shortest round-trip floats) reads back the same.
    #[test]
    fn csv_round_trip(d in labelled(), header in any::<bool>()) {
        let mut text = String::new();
        if header {
            text.push_str("label");
            for k in 0..d.features { text.push_str(&format!(",x{k}")); }
            text.push('\n');
        }
        for i in 0..d.len() {
            text.push_str(&d.labels[i].to_string());
            for x in d.input(i) { text.push_str(&format!(",{x}")); }
            text.push('\n');
        }
        let back = parse_labeled_csv(&text, Path::new("t.csv")).unwrap();
        prop_assert_eq!(back.inputs, d.inputs.clone());
        prop_assert_eq!(back.labels, d.labels.clone());
        prop_assert_eq!(back.classes, d.classes);
    }

    /// The split is a partition, stratified, and reproducible.
    #[test]
    fn split_partitions_each_class(d in labelled(), frac in 0.0f64..0.9, seed in any::<u64>()) {
        match d.stratified_split(frac, seed) {
            Err(_) => {
                // Only refused when a part would be empty.
                let counts = d.class_counts();
                let test: usize = counts.iter().map(|&c| (frac * c as f64).round() as usize).sum();
                prop_assert!(frac > 0.0 && (test == 0 || test == d.len()));
            }
            Ok(s) => {
                prop_assert_eq!(s.train.len() + s.test.len(), d.len());
                for (c, &n) in d.class_counts().iter().enumerate() {
                    let t = s.test.class_counts()[c];
                    prop_assert_eq!(t, (frac * n as f64).round() as usize);
                    prop_assert_eq!(t + s.train.class_counts()[c], n);
                }
                // Every example appears once: sort rows of both parts and compare.
                let mut all: Vec<(u32, Vec<u32>)> = (0..d.len())
                    .map(|i| (d.labels[i], d.input(i).iter().map(|x| x.to_bits()).collect()))
                    .collect();
                let mut parts: Vec<(u32, Vec<u32>)> = [&s.train, &s.test]
                    .iter()
                    .flat_map(|p| (0..p.len()).map(move |i| (p.labels[i], p.input(i).iter().map(|x| x.to_bits()).collect())))
                    .collect();
                all.sort();
                parts.sort();
                prop_assert_eq!(all, parts);
                prop_assert_eq!(s, d.stratified_split(frac, seed).unwrap());
            }
        }
    }

    /// Scalings survive their text form exactly, and standardized training data has mean
    /// about 0 and standard deviation about 1 (or 0 for a constant feature).
    #[test]
    fn scaling_text_round_trip_and_moments(d in labelled()) {
        for kind in [ScalingKind::Auto, ScalingKind::None, ScalingKind::Standardize] {
            let s = kind.fit(&d);
            prop_assert_eq!(s.to_string().parse::<Scaling>().unwrap(), s.clone());
            let mut t = d.clone();
            s.apply(&mut t).unwrap();
            prop_assert!(t.inputs.iter().all(|x| x.is_finite()));
            if kind == ScalingKind::Auto {
                prop_assert!(t.inputs.iter().all(|x| x.abs() <= 1.0));
            }
            if kind == ScalingKind::Standardize {
                for k in 0..t.features {
                    let col: Vec<f64> = (0..t.len()).map(|i| t.input(i)[k] as f64).collect();
                    let mean = col.iter().sum::<f64>() / col.len() as f64;
                    let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / col.len() as f64;
                    prop_assert!(mean.abs() < 1e-3, "mean {}", mean);
                    prop_assert!(var.sqrt() < 1e-3 || (var.sqrt() - 1.0).abs() < 1e-3, "std {}", var.sqrt());
                }
            }
        }
    }
}
