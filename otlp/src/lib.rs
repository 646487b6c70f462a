//! OTLP on the wire, both ways, without the server: [`wire`] encodes the SDK's spans straight
//! to protobuf and sends them (the server's span exporter), and [`sink`] is a minimal receiver
//! (`flowscope bench --telemetry` and the telemetry tests export to it).

pub mod sink;
pub mod wire;
