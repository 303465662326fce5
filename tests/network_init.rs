//! Initialisers' statistics, reproducibility, validation errors, and SGD on a tiny problem.

use backprop::linalg::Matrix;
use backprop::network::{
    Activation, Cost, Gradients, Init, Layer, Network, NetworkError, Workspace,
};
use Activation::*;

fn mean_var(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64,
    )
}

#[test]
fn every_init_has_its_stated_mean_and_variance() {
    // A 400 -> 600 layer: 240,000 weights, so the sample variance is within ~0.6% (3 sd).
    let (fan_in, fan_out) = (400.0, 600.0);
    for init in Init::ALL {
        let net = Network::<f64>::new(&[400, 600], &[Sigmoid], Cost::Quadratic, init, 11).unwrap();
        let (w, b) = (net.layers[0].weights.as_slice(), &net.layers[0].biases);
        let (wm, wv) = mean_var(w);
        let (want_wv, want_bv) = match init {
            Init::Large => (1.0, 1.0),
            Init::Scaled => (1.0 / fan_in, 1.0),
            Init::Xavier => (2.0 / (fan_in + fan_out), 0.0),
            Init::He => (2.0 / fan_in, 0.0),
            // U(-r, r) has variance r^2 / 3, r = 1/sqrt(fan_in)
            Init::Uniform => (1.0 / (3.0 * fan_in), 1.0 / (3.0 * fan_in)),
        };
        assert!(
            wm.abs() < 4.0 * (want_wv / w.len() as f64).sqrt(),
            "{init}: weight mean {wm}"
        );
        assert!(
            (wv / want_wv - 1.0).abs() < 0.02,
            "{init}: weight variance {wv}, want {want_wv}"
        );
        let (bm, bv) = mean_var(b);
        if want_bv == 0.0 {
            assert!(b.iter().all(|&x| x == 0.0), "{init}: biases");
        } else {
            // 600 biases: variance within ~20%.
            assert!(
                bm.abs() < 4.0 * (want_bv / 600.0f64).sqrt(),
                "{init}: bias mean {bm}"
            );
            assert!(
                (bv / want_bv - 1.0).abs() < 0.25,
                "{init}: bias variance {bv}, want {want_bv}"
            );
        }
        if init == Init::Uniform {
            let r = 1.0 / fan_in.sqrt();
            assert!(w.iter().chain(b).all(|x| x.abs() <= r));
        }
    }
}

#[test]
fn same_seed_same_weights_in_both_precisions() {
    for init in Init::ALL {
        let make = |seed| {
            Network::<f64>::new(&[3, 5, 2], &[Tanh, Sigmoid], Cost::Quadratic, init, seed).unwrap()
        };
        assert_eq!(make(4), make(4), "{init}");
        if init != Init::Xavier && init != Init::He {
            assert_ne!(make(4), make(5), "{init}");
        } else {
            assert_ne!(
                make(4).layers[0].weights,
                make(5).layers[0].weights,
                "{init}"
            );
        }
        let n32 =
            Network::<f32>::new(&[3, 5, 2], &[Tanh, Sigmoid], Cost::Quadratic, init, 4).unwrap();
        assert_eq!(n32, make(4).cast::<f32>(), "{init}");
    }
}

#[test]
fn init_names_round_trip() {
    for init in Init::ALL {
        assert_eq!(init.to_string().parse::<Init>().unwrap(), init);
    }
    let e = "gaussian".parse::<Init>().unwrap_err();
    assert_eq!(e.expected, ["large", "scaled", "xavier", "he", "uniform"]);
    assert_eq!(
        e.to_string(),
        "unknown initialiser 'gaussian' (expected one of: large, scaled, xavier, he, uniform)"
    );
}

#[test]
fn new_rejects_bad_shapes_and_pairings() {
    let new = |sizes: &[usize], acts: &[Activation], cost| {
        Network::<f64>::new(sizes, acts, cost, Init::He, 0).unwrap_err()
    };
    assert_eq!(
        new(&[3], &[], Cost::Quadratic),
        NetworkError::TooFewLayers { got: 1 }
    );
    assert_eq!(
        new(&[2, 0, 3], &[Relu, Sigmoid], Cost::Quadratic),
        NetworkError::ZeroSize { layer: 2 }
    );
    assert_eq!(
        new(&[2, 4, 3], &[Relu], Cost::Quadratic),
        NetworkError::ActivationCount {
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        new(&[2, 4, 3], &[Softmax, Softmax], Cost::LogLikelihood),
        NetworkError::SoftmaxNotOutput {
            layer: 2,
            layers: 3
        }
    );
    assert_eq!(
        new(&[2, 4, 3], &[Relu, Sigmoid], Cost::LogLikelihood),
        NetworkError::CostNeedsOutput {
            cost: Cost::LogLikelihood,
            needs: Softmax,
            got: Sigmoid
        }
    );
    assert_eq!(
        new(&[2, 4, 3], &[Relu, Softmax], Cost::CrossEntropy),
        NetworkError::CostNeedsOutput {
            cost: Cost::CrossEntropy,
            needs: Sigmoid,
            got: Softmax
        }
    );
    assert_eq!(
        NetworkError::SoftmaxNotOutput {
            layer: 2,
            layers: 3
        }
        .to_string(),
        "softmax is for the output layer only, but layer 2 of 3 uses it"
    );
}

#[test]
fn from_layers_rejects_unchained_sizes_and_biases() {
    let layer = |rows, cols, biases| Layer {
        weights: Matrix::<f64>::zeros(rows, cols),
        biases: vec![0.0; biases],
        activation: Sigmoid,
    };
    let err = Network::from_layers(vec![layer(4, 2, 3)], Cost::Quadratic).unwrap_err();
    assert_eq!(
        err,
        NetworkError::BiasLength {
            layer: 2,
            rows: 4,
            biases: 3
        }
    );
    assert_eq!(err.to_string(), "layer 2: 3 biases for 4 neurons");
    let err =
        Network::from_layers(vec![layer(4, 2, 4), layer(3, 5, 3)], Cost::Quadratic).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer 3: weights are 3x5, but layer 2 has 4 neurons"
    );
    assert_eq!(
        Network::<f64>::from_layers(vec![], Cost::Quadratic).unwrap_err(),
        NetworkError::TooFewLayers { got: 0 }
    );
}

#[test]
fn batches_of_the_wrong_shape_are_errors_not_panics() {
    let net = Network::<f64>::new(&[2, 3], &[Sigmoid], Cost::Quadratic, Init::Large, 0).unwrap();
    let mut ws = Workspace::new(&net, 2);
    let mut g = Gradients::zeros_like(&net);
    assert_eq!(
        net.try_backprop(&[], &[], 0, &mut ws, &mut g).unwrap_err(),
        NetworkError::EmptyBatch
    );
    let err = net
        .try_backprop(&[1.0; 3], &[0.0; 6], 2, &mut ws, &mut g)
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::BatchShape {
            what: "inputs",
            n: 2,
            width: 2,
            expected: 4,
            got: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "inputs has 3 values, expected 2 examples x 2 = 4"
    );
    let err = net
        .try_backprop(&[1.0; 4], &[0.0; 5], 2, &mut ws, &mut g)
        .unwrap_err();
    assert!(matches!(
        err,
        NetworkError::BatchShape {
            what: "targets",
            ..
        }
    ));
    let other = Network::<f64>::new(&[2, 4], &[Sigmoid], Cost::Quadratic, Init::Large, 0).unwrap();
    let err = net
        .try_backprop(
            &[1.0; 4],
            &[0.0; 6],
            2,
            &mut ws,
            &mut Gradients::zeros_like(&other),
        )
        .unwrap_err();
    assert_eq!(err, NetworkError::GradientShape);
    assert!(net.try_feed_forward(&[1.0; 5], 2, &mut ws).is_err());
    let mut net = net;
    assert_eq!(
        net.sgd(&[1.0; 4], &[0.0; 6], 2, 0, 1, 0.1, 0).unwrap_err(),
        NetworkError::ZeroBatchSize
    );
}

#[test]
fn sgd_learns_xor() {
    // XOR on a 2-4-2 sigmoid/softmax network with log-likelihood, mini-batches of 2.
    let x = [0.0f64, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let y = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let mut net = Network::new(
        &[2, 4, 2],
        &[Sigmoid, Softmax],
        Cost::LogLikelihood,
        Init::Large,
        3,
    )
    .unwrap();
    let costs = net.sgd(&x, &y, 4, 2, 3000, 1.0, 9).unwrap();
    assert!(costs[0] > 0.5, "starts near ln 2: {}", costs[0]);
    assert!(costs[2999] < 0.02, "J after training: {}", costs[2999]);
    let mut ws = Workspace::new(&net, 4);
    let out = net.feed_forward(&x, 4, &mut ws);
    for (i, row) in out.chunks(2).enumerate() {
        let class = (row[1] > row[0]) as usize;
        assert_eq!(class, y[2 * i + 1] as usize, "example {i}: {row:?}");
    }
    // Same seed, same training: reproducible to the bit.
    let mut again = Network::new(
        &[2, 4, 2],
        &[Sigmoid, Softmax],
        Cost::LogLikelihood,
        Init::Large,
        3,
    )
    .unwrap();
    assert_eq!(again.sgd(&x, &y, 4, 2, 3000, 1.0, 9).unwrap(), costs);
    assert_eq!(again, net);
}

#[test]
fn sgd_step_follows_the_gradient_downhill() {
    let mut net = Network::<f64>::new(
        &[3, 4, 2],
        &[Tanh, Identity],
        Cost::Quadratic,
        Init::Scaled,
        2,
    )
    .unwrap();
    let (x, y) = ([0.1, 0.2, 0.3, -0.5, 0.4, 0.9], [1.0, -1.0, 0.5, 0.0]);
    let mut ws = Workspace::new(&net, 2);
    let mut g = Gradients::zeros_like(&net);
    let j0 = net.backprop(&x, &y, 2, &mut ws, &mut g);
    let before = net.clone();
    net.sgd_step(&g, 0.01);
    for (l, (b, gw)) in net.layers.iter().zip(before.layers.iter().zip(&g.weights)) {
        for ((w, w0), gw) in l
            .weights
            .as_slice()
            .iter()
            .zip(b.weights.as_slice())
            .zip(gw.as_slice())
        {
            assert_eq!(*w, w0 - 0.01 * gw);
        }
    }
    let j1 = net.cost(&x, &y, 2, &mut ws);
    let g2: f64 = g
        .weights
        .iter()
        .flat_map(|m| m.as_slice())
        .chain(g.biases.iter().flatten())
        .map(|v| v * v)
        .sum();
    // First order: J decreases by about eta |grad|^2.
    assert!(
        j1 < j0 && ((j0 - j1) / (0.01 * g2) - 1.0).abs() < 0.05,
        "{j0} -> {j1}, {g2}"
    );
}

#[test]
fn layers_broken_through_public_fields_are_errors_not_panics() {
    let mut net = Network::<f64>::new(
        &[2, 3, 2],
        &[Tanh, Sigmoid],
        Cost::Quadratic,
        Init::Large,
        0,
    )
    .unwrap();
    net.layers[1].weights = Matrix::zeros(2, 4);
    let mut ws = Workspace::new(&net, 1);
    let mut g = Gradients::zeros_like(&net);
    let err = net
        .try_backprop(&[1.0, 2.0], &[0.0, 1.0], 1, &mut ws, &mut g)
        .unwrap_err();
    assert_eq!(
        err,
        NetworkError::SizesDontChain {
            layer: 3,
            rows: 2,
            cols: 4,
            expected: 3
        }
    );
    net.layers[1].weights = Matrix::zeros(2, 3);
    net.layers[0].biases.pop();
    assert!(matches!(
        net.try_cost(&[1.0, 2.0], &[0.0, 1.0], 1, &mut ws),
        Err(NetworkError::BiasLength { layer: 2, .. })
    ));
    net.layers.clear();
    assert!(net.try_feed_forward(&[1.0], 1, &mut ws).is_err());
}
