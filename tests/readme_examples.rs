//! The README's library examples, exactly as printed there, so they cannot rot.

use backprop::graph::{grad, Real};

// One function, written once, for f64, forward mode (dual numbers) and reverse mode (the tape).
fn o<T: Real>(x: &[T]) -> T {
    let (a, b) = (x[0], x[1]);
    let (c, d) = (a + b, a * b);
    c * d * 0.5
}

#[test]
fn the_scalar_graph_example() {
    assert_eq!(grad(|x| o(x), &[2.0, 3.0]), vec![10.5, 8.0]);
    // The same function on plain numbers and in forward mode.
    assert_eq!(o(&[2.0, 3.0]), 15.0);
    let (value, derivative) = backprop::graph::jvp(o, &[2.0, 3.0], &[1.0, 0.0]).unwrap();
    assert_eq!((value, derivative), (15.0, 10.5));
}

#[test]
fn the_network_example() -> Result<(), Box<dyn std::error::Error>> {
    use backprop::network::{Activation::*, Cost, Gradients, Init, Network, Workspace};
    let net = Network::<f64>::new(
        &[2, 4, 4, 3],
        &[Sigmoid, Sigmoid, Softmax],
        Cost::LogLikelihood,
        Init::Scaled,
        42,
    )?;
    let (x, y) = ([0.3, -0.7, 1.2, 0.4], [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]); // n = 2, one example per row
    let (mut ws, mut grads) = (Workspace::new(&net, 2), Gradients::zeros_like(&net));
    let j = net.backprop(&x, &y, 2, &mut ws, &mut grads); // J, dJ/dW^l, dJ/db^l
    let (losses, per_example) = net.per_example_gradients(&x, &y, 2, &mut ws)?; // the post's W_i, B_i
                                                                                // J is the mean of the C_i, and dJ/dtheta the mean of the W_i, B_i.
    assert!((j - (losses[0] + losses[1]) / 2.0).abs() < 1e-15);
    let mean = (per_example[0].weights[0][(1, 0)] + per_example[1].weights[0][(1, 0)]) / 2.0;
    assert!((grads.weights[0][(1, 0)] - mean).abs() < 1e-15);
    Ok(())
}
