//! The seam between models and optimizers, files and the loop: a model as named
//! parameters. An optimizer steps any model that exposes them, keyed by name, and a
//! checkpoint written with positional names (before names) still resumes.

use backprop::model::{GradientShapeError, Model, Param, ParamInfo, ParamMut, ValuesMut};
use backprop::model_file::{
    bias_name, load_checkpoint, read_tensors, save_checkpoint, save_tensors, weight_name,
};
use backprop::network::{Activation, Cost, Gradients, Init, Network};
use backprop::optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind};

/// A model that is nothing but named flat tensors, as a CNN or an LSTM looks through the
/// seam: it shares no code with `Network`.
#[derive(Clone, Debug, PartialEq)]
struct Flat {
    params: Vec<(String, Vec<usize>, Vec<f64>)>,
}

impl Model<f64> for Flat {
    type Grads = Vec<Vec<f64>>;
    fn visit_params(&self, f: &mut dyn FnMut(Param<'_, f64>)) {
        for (name, shape, values) in &self.params {
            f(Param {
                name,
                shape,
                values,
            });
        }
    }
    fn visit_values_mut(&mut self, f: &mut dyn FnMut(ValuesMut<'_, f64>)) {
        for (name, shape, values) in &mut self.params {
            f(ValuesMut {
                name,
                shape,
                values,
            });
        }
    }
    fn visit_params_mut(
        &mut self,
        grads: &Vec<Vec<f64>>,
        f: &mut dyn FnMut(ParamMut<'_, f64>),
    ) -> Result<(), GradientShapeError> {
        let same = grads.len() == self.params.len()
            && grads
                .iter()
                .zip(&self.params)
                .all(|(g, p)| g.len() == p.2.len());
        if !same {
            return Err(GradientShapeError);
        }
        for ((name, shape, values), grad) in self.params.iter_mut().zip(grads) {
            f(ParamMut {
                name,
                shape,
                values,
                grad,
            });
        }
        Ok(())
    }
}

fn net() -> Network<f64> {
    Network::new(
        &[3, 4, 2],
        &[Activation::Tanh, Activation::Softmax],
        Cost::LogLikelihood,
        Init::Scaled,
        11,
    )
    .unwrap()
}

/// Deterministic gradients for step k, depending on the parameters (so a difference in
/// state shows in later steps).
fn grads(n: &Network<f64>, k: usize) -> Gradients<f64> {
    let mut g = Gradients::zeros_like(n);
    for (l, (gw, gb)) in n
        .layers
        .iter()
        .zip(g.weights.iter_mut().zip(g.biases.iter_mut()))
    {
        for (o, &w) in gw.as_mut_slice().iter_mut().zip(l.weights.as_slice()) {
            *o = w * w - 0.3 * (k as f64 * 1.3).cos();
        }
        for (o, &b) in gb.iter_mut().zip(&l.biases) {
            *o = b + 0.1 * k as f64;
        }
    }
    g
}

fn flat_of(n: &Network<f64>) -> Flat {
    let mut params = Vec::new();
    n.visit_params(&mut |p| params.push((p.name.into(), p.shape.to_vec(), p.values.to_vec())));
    Flat { params }
}

fn flat_grads(g: &Gradients<f64>) -> Vec<Vec<f64>> {
    g.weights
        .iter()
        .zip(&g.biases)
        .flat_map(|(w, b)| [w.as_slice().to_vec(), b.clone()])
        .collect()
}

#[test]
fn network_params_are_named_and_shaped_as_its_model_files() {
    let n = net();
    let infos = n.param_infos();
    let expected: Vec<ParamInfo> = n
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            [
                ParamInfo {
                    name: weight_name(i),
                    shape: vec![l.weights.rows(), l.weights.cols()],
                },
                ParamInfo {
                    name: bias_name(i),
                    shape: vec![l.biases.len()],
                },
            ]
        })
        .collect();
    assert_eq!(infos, expected);
    assert_eq!(
        infos.iter().map(|p| p.len().unwrap()).sum::<usize>(),
        n.num_params()
    );
    // The values are the layers' own, in place.
    let mut firsts = Vec::new();
    n.visit_params(&mut |p| firsts.push(p.values[0]));
    assert_eq!(firsts[2], n.layers[1].weights.as_slice()[0]);
    assert_eq!(firsts[3], n.layers[1].biases[0]);
}

#[test]
fn misshapen_gradients_are_refused_before_any_visit() {
    let mut n = net();
    let mut g = Gradients::zeros_like(&n);
    g.biases[0].push(0.0);
    let mut calls = 0;
    assert_eq!(
        n.visit_params_mut(&g, &mut |_| calls += 1),
        Err(GradientShapeError)
    );
    assert_eq!(calls, 0);
}

/// Two implementations of the seam, one optimizer: every kind moves a `Flat` model
/// exactly as it moves the `Network` it was copied from, to the bit.
#[test]
fn any_model_steps_as_the_network_does() {
    for kind in OptimizerKind::ALL {
        let mut c = OptimizerConfig::new(kind);
        c.weight_decay = 0.02;
        c.decay_biases = false;
        let mut n = net();
        let mut f = flat_of(&n);
        let mut on = Optimizer::new(c, &n).unwrap();
        let mut of = Optimizer::new(c, &f).unwrap();
        for k in 0..6 {
            let g = grads(&n, k);
            on.step(&mut n, &g, 0.05).unwrap();
            of.step(&mut f, &flat_grads(&g), 0.05).unwrap();
        }
        assert_eq!(f, flat_of(&n), "{kind}");
        assert_eq!(on.state_tensors(), of.state_tensors(), "{kind}");
    }
}

/// Weight decay that spares biases spares every 1-D parameter and every name ending in
/// `bias`: with zero gradients, SGD leaves them be and shrinks the rest by 1 - eta lambda.
#[test]
fn sparing_biases_goes_by_name_and_dimension() {
    let p = |name: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        (name.to_string(), shape, vec![2.0; n])
    };
    let mut m = Flat {
        params: vec![
            p("0.weight", vec![2, 1, 2, 2]),
            p("0.bias", vec![2]),
            p("1.weight_ih_l0", vec![4, 2]),
            p("1.bias_ih_l0", vec![4]),
            p("2.scale_bias", vec![1, 3]),
        ],
    };
    let mut c = OptimizerConfig::new(OptimizerKind::Sgd);
    c.weight_decay = 0.5;
    c.decay_biases = false;
    let mut sgd = Optimizer::new(c, &m).unwrap();
    let zeros: Vec<Vec<f64>> = m.params.iter().map(|p| vec![0.0; p.2.len()]).collect();
    sgd.step(&mut m, &zeros, 0.1).unwrap();
    // w <- w - eta (0 + lambda w) = 2 (1 - 0.1 * 0.5) = 1.9 for weights; biases stay 2.
    let firsts: Vec<f64> = m.params.iter().map(|p| p.2[0]).collect();
    assert_eq!(firsts, [1.9, 2.0, 1.9, 2.0, 2.0]);
}

#[test]
fn a_model_with_other_names_is_refused_and_left_alone() {
    let n = net();
    let mut f = flat_of(&n);
    let mut adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &n).unwrap();
    // Same sizes, another name: state is keyed by name, so this is another model.
    f.params[1].0 = "layers.0.beta".into();
    let before = f.clone();
    let g = flat_grads(&grads(&n, 0));
    let e = adam.step(&mut f, &g, 0.1).unwrap_err();
    assert!(
        matches!(&e, OptimError::NetworkShape { reason } if reason.contains("layers.0.beta") && reason.contains("layers.0.bias")),
        "{e}"
    );
    // One parameter fewer.
    let mut short = flat_of(&n);
    short.params.pop();
    assert!(adam.step(&mut short, &g[..3].to_vec(), 0.1).is_err());
    assert_eq!((f, adam.steps()), (before, 0));
    // Names must be unique and present.
    let info = |name: &str| ParamInfo {
        name: name.into(),
        shape: vec![2],
    };
    for params in [vec![info("a"), info("a")], vec![info("")]] {
        let e = Optimizer::<f64>::from_params(OptimizerConfig::new(OptimizerKind::Sgd), params)
            .unwrap_err();
        assert!(matches!(e, OptimError::BadParam { .. }), "{e}");
    }
}

/// A checkpoint from before state was keyed by name holds `optim.{i}.{buffer}`, tensor i
/// in the order layers.0.weight, layers.0.bias, layers.1.weight, ...: it resumes exactly.
#[test]
fn a_checkpoint_with_positional_state_names_still_resumes() {
    for kind in [OptimizerKind::Momentum, OptimizerKind::Adam] {
        let mut c = OptimizerConfig::new(kind);
        c.weight_decay = 0.01;
        let mut n = net();
        let mut opt = Optimizer::new(c, &n).unwrap();
        for k in 0..3 {
            let g = grads(&n, k);
            opt.step(&mut n, &g, 0.05).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let new_path = dir.path().join("new.safetensors");
        save_checkpoint(&n, &opt, &new_path, &[("epoch".into(), "3".into())], &[]).unwrap();

        // Rewrite it the old way: the same file with positional optimizer names.
        let (tensors, meta) = read_tensors(&new_path).unwrap();
        let position: Vec<String> = n.param_infos().into_iter().map(|p| p.name).collect();
        let renamed: Vec<(String, Vec<usize>, Vec<f64>)> = tensors
            .into_iter()
            .map(|(name, (shape, values))| {
                let name = match name.strip_prefix("optim.") {
                    Some(rest) => {
                        let (param, buffer) = rest.rsplit_once('.').unwrap();
                        let i = position.iter().position(|p| p == param).unwrap();
                        format!("optim.{i}.{buffer}")
                    }
                    None => name,
                };
                (name, shape, values)
            })
            .collect();
        assert!(renamed
            .iter()
            .any(|t| t.0 == "optim.3.".to_string() + kind_buffer(kind)));
        let old_path = dir.path().join("old.safetensors");
        let as_named: Vec<(&str, &[usize], &[f64])> = renamed
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        let meta: Vec<(String, String)> = meta.into_iter().collect();
        save_tensors(&old_path, &as_named, &meta).unwrap();

        let mut resumed = Optimizer::new(c, &n).unwrap();
        load_checkpoint(&old_path)
            .unwrap()
            .restore(&mut resumed)
            .unwrap();
        assert_eq!(resumed, opt, "{kind}");
        // The new names are what it writes from then on.
        assert!(resumed.state_tensors()[0]
            .0
            .starts_with("optim.layers.0.weight."));

        // A damaged old checkpoint names the missing tensor as the file would.
        let mut damaged = load_checkpoint(&old_path).unwrap();
        damaged
            .optimizer_state
            .remove(&format!("optim.1.{}", kind_buffer(kind)));
        let e = damaged.restore(&mut resumed).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("missing tensor optim.1.{}", kind_buffer(kind))),
            "{e}"
        );
    }
}

fn kind_buffer(kind: OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Momentum | OptimizerKind::Nesterov => "momentum_buffer",
        _ => "exp_avg",
    }
}

/// `save_named` and `load_named` know only names: a network's parameters go into a
/// `Flat` model of the same names and back, and every mismatch is refused before anything
/// is written into the model.
#[test]
fn named_files_carry_any_model_and_refuse_misfits() {
    use backprop::model_file::{load_named, save_named, ModelFileError};
    let n = net();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.safetensors");
    let meta = vec![(
        "arch".to_string(),
        "Linear(3, 4), Tanh(), Linear(4, 2)".to_string(),
    )];
    save_named(&n, &path, &meta).unwrap();

    let mut zeroed = flat_of(&n);
    for p in &mut zeroed.params {
        p.2.iter_mut().for_each(|v| *v = 0.0);
    }
    let metadata = load_named(&mut zeroed, &path).unwrap();
    assert_eq!(zeroed, flat_of(&n));
    assert_eq!(metadata["arch"], meta[0].1);

    let untouched = {
        let mut f = flat_of(&n);
        f.params[3].2[0] = 9.0;
        f
    };
    let mut target = untouched.clone();
    // Another shape for a parameter.
    target.params[2].1 = vec![8, 2];
    let e = load_named(&mut target, &path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::WrongShape { tensor, .. } if tensor == "layers.1.weight"),
        "{e}"
    );
    // A parameter the file lacks, and a tensor the model lacks.
    let mut target = untouched.clone();
    target.params[0].0 = "layers.0.kernel".into();
    let e = load_named(&mut target, &path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::NotAParameter { tensor, .. } if tensor == "layers.0.weight"),
        "{e}"
    );
    target.params.push(("extra".into(), vec![1], vec![0.0]));
    target.params[0].0 = "layers.0.weight".into();
    let e = load_named(&mut target, &path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::MissingTensor { tensor, .. } if tensor == "extra"),
        "{e}"
    );
    // A NaN in the file.
    let mut bad = flat_of(&n);
    bad.params[1].2[2] = f64::NAN;
    let nan_path = dir.path().join("nan.safetensors");
    save_named(&bad, &nan_path, &[]).unwrap();
    let mut target = untouched.clone();
    let e = load_named(&mut target, &nan_path).unwrap_err();
    assert!(
        matches!(&e, ModelFileError::NonFinite { index: 2, .. }),
        "{e}"
    );
    assert_eq!(target, untouched);
    // F64 values do not round silently into an f32 model.
    let mut narrow: Network<f32> = n.cast();
    let e = load_named(&mut narrow, &path).unwrap_err();
    assert!(matches!(&e, ModelFileError::WrongDtype { .. }), "{e}");
    assert_eq!(narrow, n.cast::<f32>());
}
