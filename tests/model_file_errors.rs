//! Every bad model file, made here from a good one, is refused with an error that names
//! the file and the tensor.

use backprop::linalg::Matrix;
use backprop::model_file::{
    load, load_bytes, read_tensors, save, save_tensors, tensors_to_bytes, ModelFileError,
};
use backprop::network::{Activation, Cost, Layer, Network};
use std::path::{Path, PathBuf};

/// The seed's Figure 2 shape, 2-4-4-3, with distinct weights.
fn net() -> Network<f64> {
    let sizes = [2, 4, 4, 3];
    let acts = [
        Activation::Sigmoid,
        Activation::Sigmoid,
        Activation::Softmax,
    ];
    Network {
        layers: (0..3)
            .map(|i| Layer {
                weights: Matrix::from_vec(
                    sizes[i + 1],
                    sizes[i],
                    (0..sizes[i + 1] * sizes[i])
                        .map(|k| (k as f64 + 1.0) / (10.0 * (i + 1) as f64))
                        .collect(),
                )
                .unwrap(),
                biases: (0..sizes[i + 1]).map(|k| -(k as f64) / 7.0).collect(),
                activation: acts[i],
            })
            .collect(),
        cost: Cost::LogLikelihood,
    }
}

fn good_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    save(&net(), &p, &[]).unwrap();
    std::fs::read(p).unwrap()
}

const NAME: &str = "bad.safetensors";

fn err(bytes: &[u8]) -> ModelFileError {
    let e = load_bytes(bytes, Path::new(NAME)).expect_err("must be refused");
    assert!(
        e.to_string().contains(NAME),
        "error does not name the file: {e}"
    );
    e
}

/// Builds a file from (name, shape, values) tensors of the good network, after `edit`.
fn rebuilt(
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f64>)>, &mut Vec<(String, String)>),
) -> Vec<u8> {
    let n = net();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f64>)> = Vec::new();
    for (i, l) in n.layers.iter().enumerate() {
        tensors.push((
            format!("layers.{i}.weight"),
            vec![l.weights.rows(), l.weights.cols()],
            l.weights.as_slice().to_vec(),
        ));
        tensors.push((
            format!("layers.{i}.bias"),
            vec![l.biases.len()],
            l.biases.clone(),
        ));
    }
    let mut meta = vec![
        ("layers".to_string(), "2,4,4,3".to_string()),
        (
            "activations".to_string(),
            "sigmoid,sigmoid,softmax".to_string(),
        ),
        ("cost".to_string(), "log-likelihood".to_string()),
    ];
    edit(&mut tensors, &mut meta);
    let refs: Vec<(&str, &[usize], &[f64])> = tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    tensors_to_bytes(Path::new(NAME), &refs, &meta).unwrap()
}

#[test]
fn the_rebuilt_good_file_loads() {
    // The helper itself makes a valid file, so each failure below is due to its one edit.
    let m = load_bytes(&rebuilt(|_, _| {}), Path::new(NAME)).unwrap();
    assert_eq!(m.network, backprop::model_file::AnyNetwork::F64(net()));
    assert_eq!(rebuilt(|_, _| {}), good_bytes());
}

#[test]
fn not_safetensors_empty_and_truncated() {
    let e = err(b"");
    assert!(matches!(e, ModelFileError::Format { .. }), "{e:?}");
    let e = err(b"this is a CSV file,1,2,3\n4,5,6\n");
    assert!(matches!(e, ModelFileError::Format { .. }), "{e:?}");
    let good = good_bytes();
    for cut in [4, 8, 20, good.len() / 2, good.len() - 1] {
        let e = err(&good[..cut]);
        assert!(
            matches!(e, ModelFileError::Format { .. }),
            "cut {cut}: {e:?}"
        );
    }
    let e = err(&good[..good.len() / 2]);
    assert!(e.to_string().contains("truncated"), "{e}");
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    assert!(matches!(err(&long), ModelFileError::Format { .. }));
}

#[test]
fn header_length_beyond_the_file_fails_without_allocating() {
    let good = good_bytes();
    // Claim an 8-exabyte header, then one just past the end of the file, then one inside
    // the file but cutting the JSON short.
    for claim in [u64::MAX / 2, good.len() as u64, 16] {
        let mut bad = good.clone();
        bad[..8].copy_from_slice(&claim.to_le_bytes());
        let e = err(&bad);
        assert!(
            matches!(e, ModelFileError::Format { .. }),
            "claim {claim}: {e:?}"
        );
    }
    // A tensor whose data_offsets point 4 GB past the file.
    let text = String::from_utf8_lossy(&good).into_owned();
    let start = text.find("\"data_offsets\":[").unwrap() + 16;
    let end = start + text[start..].find(']').unwrap();
    let mut bad = good.clone();
    let replacement = format!("{:<width$}", "0,4000000000", width = end - start);
    if replacement.len() == end - start {
        bad[start..end].copy_from_slice(replacement.as_bytes());
        assert!(matches!(err(&bad), ModelFileError::Format { .. }));
    }
}

#[test]
fn missing_tensor_names_it() {
    let bytes = rebuilt(|t, _| t.retain(|(n, _, _)| n != "layers.1.bias"));
    let e = err(&bytes);
    assert!(
        matches!(&e, ModelFileError::MissingTensor { tensor, .. } if tensor == "layers.1.bias"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{NAME}: missing tensor layers.1.bias")
    );
    let bytes = rebuilt(|t, _| t.retain(|(n, _, _)| n != "layers.0.weight"));
    assert!(
        matches!(err(&bytes), ModelFileError::MissingTensor { tensor, .. } if tensor == "layers.0.weight")
    );
}

#[test]
fn wrong_shapes_and_sizes_that_do_not_chain() {
    // layers.1.weight as [4, 3]: its 3 inputs do not match layers.0's 4 outputs.
    let bytes = rebuilt(|t, m| {
        t[2].1 = vec![4, 3];
        t[2].2.truncate(12);
        m[0].1 = "2,4,4,3".into();
    });
    let e = err(&bytes);
    assert!(
        matches!(&e, ModelFileError::WrongShape { tensor, found, .. } if tensor == "layers.1.weight" && found == &vec![4, 3]),
        "{e:?}"
    );
    // A bias of the wrong length.
    let bytes = rebuilt(|t, _| {
        t[1].1 = vec![3];
        t[1].2.truncate(3);
    });
    assert!(
        matches!(err(&bytes), ModelFileError::WrongShape { tensor, .. } if tensor == "layers.0.bias")
    );
    // A weight with 1 or 3 dimensions.
    let bytes = rebuilt(|t, _| t[0].1 = vec![8]);
    assert!(
        matches!(err(&bytes), ModelFileError::WrongShape { tensor, .. } if tensor == "layers.0.weight")
    );
    let bytes = rebuilt(|t, _| t[4].1 = vec![3, 2, 2]);
    assert!(
        matches!(err(&bytes), ModelFileError::WrongShape { tensor, .. } if tensor == "layers.2.weight")
    );
    // A transposed weight (the classic mistake): [2, 4] instead of [4, 2].
    let bytes = rebuilt(|t, _| t[0].1 = vec![2, 4]);
    assert!(matches!(
        err(&bytes),
        ModelFileError::WrongShape { .. } | ModelFileError::BadMetadata { .. }
    ));
}

#[test]
fn wrong_dtypes() {
    // A layer in F32 inside an F64 file.
    let good = good_bytes();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(NAME);
    let (mut tensors, _) = {
        std::fs::write(&p, &good).unwrap();
        read_tensors(&p).unwrap()
    };
    let (shape, data) = tensors.remove("layers.2.bias").unwrap();
    let f32data: Vec<f32> = data.iter().map(|&x| x as f32).collect();
    // Write the F64 tensors and the F32 one through the safetensors crate directly.
    use safetensors::tensor::{Dtype, TensorView};
    let f64_bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, d))| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let f32_bytes: Vec<u8> = f32data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut views: Vec<(String, TensorView)> = f64_bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F64, s.clone(), b).unwrap(),
            )
        })
        .collect();
    views.push((
        "layers.2.bias".into(),
        TensorView::new(Dtype::F32, shape.clone(), &f32_bytes).unwrap(),
    ));
    let meta: std::collections::HashMap<String, String> = [
        ("activations", "sigmoid,sigmoid,softmax"),
        ("cost", "log-likelihood"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let bytes = safetensors::serialize(views, &Some(meta.clone())).unwrap();
    let e = err(&bytes);
    assert!(
        matches!(&e, ModelFileError::WrongDtype { tensor, found, .. } if tensor == "layers.2.bias" && found == "F32"),
        "{e:?}"
    );
    // An I32 weight.
    let ints = vec![0u8; 4 * 8];
    let views = vec![(
        "layers.0.weight".to_string(),
        TensorView::new(Dtype::I32, vec![4, 2], &ints).unwrap(),
    )];
    let meta1: std::collections::HashMap<String, String> = [
        ("activations".to_string(), "sigmoid".to_string()),
        ("cost".to_string(), "quadratic".to_string()),
    ]
    .into();
    let bytes = safetensors::serialize(views, &Some(meta1)).unwrap();
    assert!(
        matches!(err(&bytes), ModelFileError::WrongDtype { tensor, .. } if tensor == "layers.0.weight")
    );
}

#[test]
fn metadata_that_disagrees_or_names_unknown_things() {
    let e = err(&rebuilt(|_, m| m[0].1 = "2,4,5,3".into()));
    assert!(
        matches!(&e, ModelFileError::BadMetadata { key, .. } if key == "layers"),
        "{e:?}"
    );
    assert!(e.to_string().contains("2,4,4,3"), "{e}");
    let e = err(&rebuilt(|_, m| m[1].1 = "sigmoid,swish,softmax".into()));
    assert!(
        matches!(&e, ModelFileError::BadMetadata { key, .. } if key == "activations"),
        "{e:?}"
    );
    assert!(e.to_string().contains("swish"), "{e}");
    let e = err(&rebuilt(|_, m| m[2].1 = "hinge".into()));
    assert!(matches!(&e, ModelFileError::BadMetadata { key, .. } if key == "cost"));
    let e = err(&rebuilt(|_, m| m.retain(|(k, _)| k != "cost")));
    assert!(
        matches!(&e, ModelFileError::BadMetadata { key, reason, .. } if key == "cost" && reason == "missing")
    );
    // Two activations for three weight layers: layers.2.* are unexpected.
    let e = err(&rebuilt(|_, m| m[1].1 = "sigmoid,sigmoid".into()));
    assert!(
        matches!(&e, ModelFileError::UnexpectedTensor { tensor, .. } if tensor.starts_with("layers.2.")),
        "{e:?}"
    );
    // Four activations for three layers: layers.3.weight is missing.
    let e = err(&rebuilt(|_, m| {
        m[1].1 = "sigmoid,sigmoid,sigmoid,softmax".into()
    }));
    assert!(
        matches!(&e, ModelFileError::MissingTensor { tensor, .. } if tensor == "layers.3.weight")
    );
    // A stray tensor.
    let e = err(&rebuilt(|t, _| {
        t.push(("extra".into(), vec![1], vec![0.0]))
    }));
    assert!(matches!(&e, ModelFileError::UnexpectedTensor { tensor, .. } if tensor == "extra"));
    // Without `layers`, the tensors alone decide the sizes.
    let m = load_bytes(
        &rebuilt(|_, m| m.retain(|(k, _)| k != "layers")),
        Path::new(NAME),
    )
    .unwrap();
    assert_eq!(m.network.sizes(), vec![2, 4, 4, 3]);
    // save refuses to let extra metadata contradict the network.
    let dir = tempfile::tempdir().unwrap();
    let e = save(
        &net(),
        &dir.path().join("x.safetensors"),
        &[("cost".into(), "quadratic".into())],
    )
    .unwrap_err();
    assert!(matches!(e, ModelFileError::BadMetadata { .. }));
}

#[test]
fn io_errors_name_the_file_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let missing: PathBuf = dir.path().join("no-such.safetensors");
    let e = load(&missing).unwrap_err();
    assert!(
        matches!(e, ModelFileError::Io { .. }) && e.to_string().contains("no-such.safetensors")
    );
    let nodir = dir.path().join("no-dir").join("m.safetensors");
    let e = save(&net(), &nodir, &[]).unwrap_err();
    assert!(
        matches!(e, ModelFileError::Io { .. }) && e.to_string().contains("no-dir"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A data length that does not fit its shape.
    let e = save_tensors::<f32>(
        &dir.path().join("t.safetensors"),
        &[("x", &[2, 2], &[1.0; 3])],
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, ModelFileError::DataShape { len: 3, .. }));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn save_tensors_round_trips_f32_and_f64() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    let w = [0.1f32, -2.5, 3.25e-8, f32::MAX];
    save_tensors::<f32>(
        &p,
        &[("grad.layers.0.weight", &[2, 2], &w), ("loss", &[], &[0.5])],
        &[],
    )
    .unwrap();
    let (t, meta) = read_tensors(&p).unwrap();
    assert!(meta.is_empty());
    assert_eq!(t["grad.layers.0.weight"].0, vec![2, 2]);
    assert_eq!(
        t["grad.layers.0.weight"].1,
        w.iter().map(|&x| x as f64).collect::<Vec<_>>()
    );
    assert_eq!(t["loss"], (vec![], vec![0.5]));
    let v = [std::f64::consts::PI, 1e-300];
    save_tensors::<f64>(&p, &[("x", &[2], &v)], &[("k".into(), "v".into())]).unwrap();
    let (t, meta) = read_tensors(&p).unwrap();
    assert_eq!(t["x"].1, v.to_vec());
    assert_eq!(meta["k"], "v");
    // A gradient file is not a model: loading it as one says what is missing.
    let e = load(&p).unwrap_err();
    assert!(matches!(e, ModelFileError::BadMetadata { .. }), "{e:?}");
}
