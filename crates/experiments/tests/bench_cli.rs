//! `smartmixed bench`: the CSV columns other tools read, appended without overwriting.

mod common;

#[test]
fn bench_ops_appends_rows_with_the_agreed_columns() {
    let dir = common::temp_dir("bench");
    let csv_path = dir.join("nested/cpu.csv");
    for _ in 0..2 {
        let output = common::run(&[
            "bench",
            "ops",
            "--shapes",
            "8x12,4x6",
            "--repeats",
            "2",
            "--csv",
            csv_path.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("faster than grouped"), "{stdout}");
    }
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        "bench,impl,pass,rows,cols,dtype,device,threads,p20_us,p50_us,p80_us,gbps,git,timestamp"
            .split(',')
            .collect::<Vec<_>>()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // 2 shapes x (24 impls x 2 passes + copy) x 2 invocations, one header. The impls: fused,
    // fused-all, fused-{gelu,silu,mish,softplus}, uniform-{relu,elu,tanh,gelu,silu}, grouped,
    // masked, mixture-fused, mixture-naive, mixture-fused-all, and {prelu, swish_beta, pau,
    // pau_neuron}-{fused,candle}.
    assert_eq!(rows.len(), 2 * 49 * 2);
    for r in &rows {
        assert_eq!(&r[0], "ops");
        let (p20, p50, p80): (f64, f64, f64) = (
            r[8].parse().unwrap(),
            r[9].parse().unwrap(),
            r[10].parse().unwrap(),
        );
        assert!(0.0 < p20 && p20 <= p50 && p50 <= p80, "{r:?}");
    }
    assert!(rows
        .iter()
        .any(|r| &r[1] == "mixture-fused" && &r[2] == "fwd_bwd"));
    assert!(rows
        .iter()
        .any(|r| &r[1] == "pau_neuron-fused" && &r[2] == "fwd_bwd"));

    let output = common::run(&["bench", "ops", "--shapes", "8by12"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--shapes"));
    std::fs::remove_dir_all(dir).unwrap();
}
