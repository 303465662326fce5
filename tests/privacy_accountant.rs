//! The Rényi-DP accountant against Opacus 1.6's `RDPAccountant` and `get_noise_multiplier`
//! (fixtures from tests/fixtures/make_privacy_fixtures.py, which runs opacus itself).

use backprop::privacy::{default_orders, noise_for_epsilon, Accountant, PrivacyError};
use serde_json::Value;

fn fixtures() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/privacy_opacus.json"
    ))
    .expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn close(got: f64, want: f64, what: &str) {
    let rel = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        rel <= 1e-6,
        "{what}: {got} vs Opacus {want} (relative {rel:.2e})"
    );
}

#[test]
fn the_default_orders_are_opacus_s() {
    let fx = fixtures();
    let want: Vec<f64> = fx["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(default_orders(), want);
}

#[test]
fn epsilon_and_order_agree_with_opacus_over_the_grid() {
    let fx = fixtures();
    let grid = fx["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 1620);
    for case in grid {
        let (q, sigma, delta) = (f(case, "q"), f(case, "sigma"), f(case, "delta"));
        let steps = case["steps"].as_u64().unwrap();
        let mut acc = Accountant::new();
        acc.add_steps(sigma, q, steps).unwrap();
        let spent = acc.spent(delta).unwrap();
        let what = format!("q {q}, sigma {sigma}, {steps} steps, delta {delta}");
        close(spent.epsilon, f(case, "epsilon"), &what);
        assert_eq!(spent.alpha, f(case, "alpha"), "best order, {what}");
    }
}

#[test]
fn steps_recorded_one_at_a_time_compose_as_opacus_s() {
    let fx = fixtures();
    for case in fx["composed"].as_array().unwrap() {
        let mut acc = Accountant::new();
        for part in case["parts"].as_array().unwrap() {
            let p: Vec<f64> = part
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            for _ in 0..p[2] as u64 {
                acc.step(p[0], p[1]).unwrap();
            }
        }
        let spent = acc.spent(f(case, "delta")).unwrap();
        close(
            spent.epsilon,
            f(case, "epsilon"),
            &case["parts"].to_string(),
        );
        assert_eq!(spent.alpha, f(case, "alpha"));
    }
    // Consecutive equal steps are one run, as in Opacus's history.
    let mut acc = Accountant::new();
    for _ in 0..5 {
        acc.step(1.0, 0.01).unwrap();
    }
    acc.step(2.0, 0.01).unwrap();
    assert_eq!(acc.history(), [(1.0, 0.01, 5), (2.0, 0.01, 1)]);
    assert_eq!(acc.steps(), 6);
}

#[test]
fn the_noise_search_finds_opacus_s_sigma() {
    let fx = fixtures();
    for case in fx["noise"].as_array().unwrap() {
        let (eps, q, delta) = (f(case, "epsilon"), f(case, "q"), f(case, "delta"));
        let steps = case["steps"].as_u64().unwrap();
        let sigma = noise_for_epsilon(eps, delta, q, steps).unwrap();
        // The search takes the same bisection steps, so the same dyadic sigma.
        assert_eq!(
            sigma,
            f(case, "noise"),
            "epsilon {eps}, q {q}, {steps} steps"
        );
        let mut acc = Accountant::new();
        acc.add_steps(sigma, q, steps).unwrap();
        let spent = acc.spent(delta).unwrap();
        close(spent.epsilon, f(case, "achieved"), "epsilon at that noise");
        assert!(spent.epsilon <= eps && spent.epsilon > eps - 0.01);
    }
}

#[test]
fn opacus_s_mnist_example() {
    // q = 240/60000, sigma 1.1, 60 epochs of 250 steps, delta 1e-5: epsilon 2.5029 at 8.4.
    let fx = fixtures();
    let m = &fx["mnist"];
    let mut acc = Accountant::new();
    acc.add_steps(1.1, 240.0 / 60000.0, 15_000).unwrap();
    let spent = acc.spent(1e-5).unwrap();
    close(spent.epsilon, f(m, "epsilon"), "MNIST example");
    assert_eq!(format!("{:.4}", spent.epsilon), "2.5029");
    assert_eq!(spent.alpha, 8.4);
}

#[test]
fn bad_settings_are_refused() {
    let mut acc = Accountant::new();
    assert!(matches!(
        acc.step(1.0, 0.0),
        Err(PrivacyError::BadSampleRate(_))
    ));
    assert!(matches!(
        acc.step(1.0, 1.5),
        Err(PrivacyError::BadSampleRate(_))
    ));
    assert!(matches!(
        acc.step(-1.0, 0.5),
        Err(PrivacyError::BadNoise(_))
    ));
    assert!(matches!(
        acc.step(f64::NAN, 0.5),
        Err(PrivacyError::BadNoise(_))
    ));
    assert!(matches!(
        acc.add_steps(1.0, 0.5, 0),
        Err(PrivacyError::ZeroSteps)
    ));
    assert!(matches!(acc.spent(0.0), Err(PrivacyError::BadDelta(_))));
    assert!(matches!(acc.spent(1.0), Err(PrivacyError::BadDelta(_))));
    // Nothing spent before the first step; no noise at all spends everything.
    assert_eq!(acc.spent(1e-5).unwrap().epsilon, 0.0);
    acc.step(0.0, 0.5).unwrap();
    assert_eq!(acc.spent(1e-5).unwrap().epsilon, f64::INFINITY);
    assert!(matches!(
        noise_for_epsilon(1e-9, 1e-5, 1.0, 1_000_000),
        Err(PrivacyError::BudgetTooLow { .. })
    ));
    assert!(matches!(
        noise_for_epsilon(0.0, 1e-5, 0.1, 10),
        Err(PrivacyError::BadEpsilon(_))
    ));
}
