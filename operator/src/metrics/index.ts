// Prometheus metrics of the operator and the HTTP server for /metrics, /healthz, /readyz.
export * from './metrics.js';
export { startMetricsServer, metricsHandler, type MetricsServer, type MetricsServerOptions } from './server.js';
