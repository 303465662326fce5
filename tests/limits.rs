//! Sizes a file or a flag can ask for, and numbers that would be wrong without a word:
//! labels beyond the class limit, confusion counts of huge models, batches and layers
//! beyond memory, many-layer model files, values beyond f32, empty parts, and model files
//! that no training run could have written.

use backprop::data::csv::{parse_labeled_csv, parse_matrix_csv};
use backprop::data::idx::{idx_dataset, load_idx_dir, parse_idx};
use backprop::data::{synthetic, DataError, Dataset, Scaling, MAX_CLASSES};
use backprop::linalg::Matrix;
use backprop::model_file::{self, AnyNetwork, ModelFileError};
use backprop::network::{
    check_batch_size, Activation, Cost, Init, Layer, Network, NetworkError, MAX_BYTES,
};
use backprop::train::{evaluate, TrainConfig, TrainError, Trainer, MAX_BATCH};
use std::path::Path;

// ---- classes and the confusion matrix ------------------------------------------------

#[test]
fn a_label_beyond_the_class_limit_is_refused_with_file_line_and_label() {
    // 81 bytes that used to make `train` ask for 34 GB: label 60000 means 60001 classes.
    let text = "label,a,b\n0,0.1,0.2\n60000,0.3,0.4\n";
    let e = parse_labeled_csv(text, Path::new("big.csv")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "big.csv: line 3, column 1: label \"60000\" is not an integer from 0 to 9999"
    );
    // The largest allowed label still loads, and sizes the classes.
    let d = parse_labeled_csv("9999,1\n0,2\n", Path::new("ok.csv")).unwrap();
    assert_eq!((d.classes, MAX_CLASSES), (10_000, 10_000));
    // In IDX: label 10000 (big-endian i32) is refused with the file and the index.
    let images = parse_idx(&idx_u8(&[2, 1], &[1, 2]), Path::new("i")).unwrap();
    let labels = parse_idx(
        &[
            &[0u8, 0, 0x0C, 1, 0, 0, 0, 2][..],
            &0i32.to_be_bytes(),
            &10_000i32.to_be_bytes(),
        ]
        .concat(),
        Path::new("l"),
    )
    .unwrap();
    let e = idx_dataset(&images, Path::new("i"), &labels, Path::new("labels.idx")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "labels.idx: example 1: label 10000 is not an integer in 0..10000"
    );
}

#[test]
fn the_confusion_counts_of_a_30000_output_model_are_sparse_and_right() {
    // One weight row per class: class 29_999 wins for x = 1 and class 7 for x = -1 (all
    // other weights 0): a model whose dense table would take 7 GB.
    let classes = 30_000;
    let mut w = vec![0.0f32; classes];
    w[29_999] = 10.0;
    w[7] = -10.0;
    let net = Network::from_layers(
        vec![Layer {
            weights: Matrix::from_vec(classes, 1, w).unwrap(),
            biases: vec![0.0; classes],
            activation: Activation::Softmax,
        }],
        Cost::LogLikelihood,
    )
    .unwrap();
    let data = Dataset::new(vec![1.0, -1.0, 1.0], vec![9_999, 7, 3], 1).unwrap();
    let e = evaluate(&net, &data).unwrap();
    let entries: Vec<_> = e.confusion.entries().collect();
    // True 3 and 9_999 predicted as 29_999; 7 right.
    assert_eq!(entries, [(3, 29_999, 1), (7, 7, 1), (9_999, 29_999, 1)]);
    assert_eq!((e.confusion.correct(), e.confusion.total(), e.n), (1, 3, 3));
    assert!((e.accuracy - 1.0 / 3.0).abs() < 1e-15);
    assert_eq!(e.confusion.span(), 30_000);
    // A square matrix is built only on request, and only if every class fits.
    assert!(e.confusion.matrix(1000).is_none());
}

// ---- batch and layer sizes -------------------------------------------------------------

fn moons() -> (Dataset, Dataset) {
    let s = synthetic::moons(60, 2).stratified_split(0.25, 2).unwrap();
    (s.train, s.test)
}

#[test]
fn a_batch_larger_than_the_data_is_cut_to_it_and_trains_as_full_batch() {
    let (train, test) = moons();
    let run = |batch| {
        let c = TrainConfig {
            hidden: vec![4],
            batch,
            epochs: 3,
            ..TrainConfig::default()
        };
        let mut t = Trainer::<f32>::new(c, 2, 2).unwrap();
        assert_eq!(t.working_batch(&train), train.len().min(batch));
        while !t.finished() {
            t.run_epoch(&train, &test, None).unwrap();
        }
        (
            t.history().iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            t.network().clone(),
        )
    };
    // Before the cut, a batch of a billion sized its buffers by the batch: 72 GB.
    let (huge_losses, huge_net) = run(MAX_BATCH);
    let (full_losses, full_net) = run(train.len());
    assert_eq!(huge_losses, full_losses);
    assert_eq!(huge_net, full_net);
}

#[test]
fn absurd_batches_and_layers_are_refused_with_their_numbers() {
    let c = TrainConfig {
        batch: usize::MAX,
        ..TrainConfig::default()
    };
    match Trainer::<f32>::new(c, 2, 2) {
        Err(TrainError::Config(e)) => assert_eq!(
            e.to_string(),
            "--batch 18446744073709551615: must be from 1 to 1000000000 (a batch larger than the training set is cut to it)"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a batch of 2^64 - 1 accepted"),
    }
    // --hidden 100000000 on 64 inputs: 7.5e9 parameters, refused before drawing any.
    let c = TrainConfig {
        hidden: vec![100_000_000],
        ..TrainConfig::default()
    };
    let e = Trainer::<f32>::new(c, 64, 10).err().expect("refused");
    assert_eq!(
        e.to_string(),
        "a network of sizes 64-100000000-10: 7500000010 f32 values would take 27.9 GiB, above the limit of 16 GiB"
    );
    // usize::MAX neurons overflow any product: refused, not a `capacity overflow` panic.
    let e = Network::<f64>::new(
        &[2, usize::MAX, 3],
        &[Activation::Relu, Activation::Sigmoid],
        Cost::Quadratic,
        Init::He,
        1,
    )
    .unwrap_err();
    assert!(
        matches!(e, NetworkError::TooLarge { dtype: "f64", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("more than 2^128 bytes") || e.to_string().contains("GiB"));
    // The workspace check: 16 GiB is the line.
    let per_example = 2 + 3 + 1 + 3 * 3; // X, Y, C_i, and Z, A, Delta of the one layer
    let n = (MAX_BYTES / 4 / per_example) as usize;
    assert!(check_batch_size::<f32>(&[2, 3], n).is_ok());
    assert!(check_batch_size::<f32>(&[2, 3], n + 1).is_err());
}

// ---- many layers ---------------------------------------------------------------------

#[test]
fn a_model_of_20000_layers_loads_whole() {
    // Loading compared every tensor name with every layer's names: 20,000 one-neuron
    // layers took 30 to 50 seconds. Now linear; the test checks that it is also right.
    let layers = 20_000;
    let sizes = vec![1; layers + 1];
    let acts = vec![Activation::Tanh; layers];
    let net = Network::<f32>::new(&sizes, &acts, Cost::Quadratic, Init::Large, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.safetensors");
    model_file::save(&net, &path, &[]).unwrap();
    let start = std::time::Instant::now();
    let m = model_file::load(&path).unwrap();
    eprintln!(
        "loaded {layers} layers in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(m.network, AnyNetwork::F32(net));
}

#[test]
fn tensor_names_must_be_the_canonical_ones() {
    // `layers.01.weight` is not `layers.1.weight`: the parsed name must be written back
    // the same way, or the tensor is unexpected.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let meta = [
        ("activations".to_string(), "sigmoid".to_string()),
        ("cost".to_string(), "quadratic".to_string()),
    ];
    model_file::save_tensors::<f32>(
        &path,
        &[
            ("layers.0.weight", &[1, 1], &[0.5]),
            ("layers.0.bias", &[1], &[0.0]),
            ("layers.00.bias", &[1], &[0.0]),
        ],
        &meta,
    )
    .unwrap();
    let e = model_file::load(&path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::UnexpectedTensor { tensor, .. } if tensor == "layers.00.bias"),
        "{e}"
    );
}

// ---- values beyond the precision ---------------------------------------------------------

#[test]
fn values_beyond_f32_are_refused_with_file_line_column_or_index() {
    let e = parse_labeled_csv("1,0.5\n0,-1e39\n", Path::new("x.csv")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.csv: line 2, column 2: -1e39 is not a finite f32 number (|x| <= 3.4e38)"
    );
    // A matrix for an f32 model refuses it; for an f64 model, 1e39 is an ordinary number.
    let e = parse_matrix_csv::<f32>("1,2\n3,1e39\n", Path::new("in.csv")).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::OutOfRange {
                precision: "f32",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("in.csv: line 2, column 2: 1e39"),
        "{e}"
    );
    let m = parse_matrix_csv::<f64>("1,2\n3,1e39\n", Path::new("in.csv")).unwrap();
    assert_eq!(m.as_slice()[3], 1e39);
    // IDX f64 images: element 3 (example 2, feature 2) is 1e39.
    let data: Vec<u8> = [1.0f64, 2.0, 3.0, 1e39]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let images = parse_idx(&idx(0x0E, &[2, 2], &data), Path::new("i")).unwrap();
    let labels = parse_idx(&idx_u8(&[2], &[0, 1]), Path::new("l")).unwrap();
    let e = idx_dataset(&images, Path::new("img.idx"), &labels, Path::new("l")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "img.idx: element 3 (example 2, feature 2): 1e39 is not a finite f32 number (|x| <= 3.4e38)"
    );
    // NaN in f32 IDX images: refused too.
    let data: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let images = parse_idx(&idx(0x0D, &[1, 2], &data), Path::new("i")).unwrap();
    let labels = parse_idx(&idx_u8(&[1], &[0]), Path::new("l")).unwrap();
    let e = idx_dataset(&images, Path::new("img.idx"), &labels, Path::new("l")).unwrap_err();
    assert!(
        e.to_string()
            .contains("element 1 (example 1, feature 2): NaN"),
        "{e}"
    );
}

#[test]
fn a_scaling_that_overflows_f32_is_refused() {
    // Finite inputs, a finite standardization, an infinite result for the second:
    // (-3e38 + 3e38) / 0.5 = 0, but (3e38 + 3e38) / 0.5 is beyond f32.
    let s = Scaling::Standardize {
        mean: vec![-3e38],
        std: vec![0.5],
    };
    let mut d = Dataset::new(vec![-3e38, 3e38], vec![0, 1], 1).unwrap();
    let e = s.apply(&mut d).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::ScaledOutOfRange {
                example: 2,
                feature: 1,
                ..
            }
        ),
        "{e}"
    );
    // Divisors that no fit produces.
    for bad in [
        "divide:1e-45",
        "divide:0",
        "divide:-1",
        "standardize:0;1e-40",
    ] {
        assert!(bad.parse::<Scaling>().is_err(), "{bad} accepted");
    }
    // Inputs too small to divide by (subnormal): the fit divides by 1 instead.
    let d = Dataset::new(vec![1e-45, 0.0], vec![0, 1], 1).unwrap();
    assert_eq!(
        backprop::data::ScalingKind::Auto.fit(&d),
        Scaling::Divide(1.0)
    );
}

// ---- empty and degenerate data ---------------------------------------------------------

fn idx(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn idx_u8(dims: &[u32], data: &[u8]) -> Vec<u8> {
    idx(8, dims, data)
}

#[test]
fn empty_parts_are_refused_naming_the_part_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.path().join(name), bytes).unwrap();
    write("train-images-idx3-ubyte", idx_u8(&[0, 1, 2], &[]));
    write("train-labels-idx1-ubyte", idx_u8(&[0], &[]));
    write("t10k-images-idx3-ubyte", idx_u8(&[1, 1, 2], &[3, 4]));
    write("t10k-labels-idx1-ubyte", idx_u8(&[1], &[1]));
    let e = load_idx_dir(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::EmptyPart {
                part: "training",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");
    write("train-images-idx3-ubyte", idx_u8(&[1, 1, 2], &[3, 4]));
    write("train-labels-idx1-ubyte", idx_u8(&[1], &[0]));
    write("t10k-images-idx3-ubyte", idx_u8(&[0, 1, 2], &[]));
    write("t10k-labels-idx1-ubyte", idx_u8(&[0], &[]));
    let e = load_idx_dir(dir.path()).unwrap_err();
    assert!(
        matches!(e, DataError::EmptyPart { part: "test", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"), "{e}");

    // The library refuses them too, rather than report 0% (or train nothing).
    let (train, test) = moons();
    let empty = train.subset(&[]);
    let mut t = Trainer::<f32>::new(TrainConfig::default(), 2, 2).unwrap();
    let e = t.run_epoch(&empty, &test, None).unwrap_err();
    assert_eq!(e.to_string(), "the training part has no examples");
    let e = t.run_epoch(&train, &empty, None).unwrap_err();
    assert_eq!(e.to_string(), "the test part has no examples");
    assert!(t.history().is_empty());
    assert!(evaluate(t.network(), &empty).is_err());
    // One class: a warning's matter, counted here.
    let one = Dataset::new(vec![0.0; 3], vec![4, 4, 4], 1).unwrap();
    assert_eq!((one.distinct_labels(), train.distinct_labels()), (1, 2));
}

// ---- model files that training could not have written ------------------------------------

fn layer(rows: usize, cols: usize, activation: Activation) -> Layer<f64> {
    Layer {
        weights: Matrix::from_vec(rows, cols, vec![0.5; rows * cols]).unwrap(),
        biases: vec![0.0; rows],
        activation,
    }
}

#[test]
fn model_files_go_through_the_checks_of_construction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    // Softmax on a hidden layer: `Network::from_layers` refuses it, so loading does.
    let net = Network {
        layers: vec![
            layer(3, 2, Activation::Softmax),
            layer(2, 3, Activation::Softmax),
        ],
        cost: Cost::LogLikelihood,
    };
    model_file::save(&net, &path, &[]).unwrap();
    let e = model_file::load(&path).unwrap_err();
    assert!(
        matches!(
            &e,
            ModelFileError::Network {
                source: NetworkError::SoftmaxNotOutput { layer: 2, .. },
                ..
            }
        ),
        "{e}"
    );
    // Log-likelihood without softmax.
    let net = Network {
        layers: vec![layer(2, 2, Activation::Sigmoid)],
        cost: Cost::LogLikelihood,
    };
    model_file::save(&net, &path, &[]).unwrap();
    let e = model_file::load(&path).unwrap_err();
    assert!(
        matches!(
            &e,
            ModelFileError::Network {
                source: NetworkError::CostNeedsOutput { .. },
                ..
            }
        ),
        "{e}"
    );
    // A scaling that divides by 1e-45 (or 0, or a negative number).
    let good = Network {
        layers: vec![layer(2, 2, Activation::Sigmoid)],
        cost: Cost::Quadratic,
    };
    for scaling in [
        "divide:1e-45",
        "divide:0",
        "divide:-3",
        "standardize:0,0;1,-1",
    ] {
        model_file::save(&good, &path, &[("scaling".into(), scaling.into())]).unwrap();
        let e = model_file::load(&path).unwrap_err();
        assert!(
            matches!(&e, ModelFileError::BadMetadata { key, .. } if key == "scaling"),
            "{scaling}: {e}"
        );
    }
    model_file::save(&good, &path, &[("scaling".into(), "divide:16".into())]).unwrap();
    assert_eq!(
        model_file::load(&path).unwrap().network,
        AnyNetwork::F64(good.clone())
    );
    // A NaN or infinite weight.
    let mut bad = good.clone();
    bad.layers[0].biases[1] = f64::INFINITY;
    model_file::save(&bad, &path, &[]).unwrap();
    let e = model_file::load(&path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::NonFinite { tensor, index: 1, .. } if tensor == "layers.0.bias"),
        "{e}"
    );
}
