/** A reader of the Prometheus text exposition format, enough for tests to check names, labels and values. */

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Samples by series name (a histogram's `_bucket`, `_sum` and `_count` are names of their own). */
export type MetricSamples = Map<string, Sample[]>;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): MetricSamples {
  const samples: MetricSamples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const [, name, labelText = '', valueText] = match;
    const labels: Record<string, string> = {};
    for (const label of labelText.matchAll(LABEL)) labels[label[1]!] = label[2]!.replace(/\\(.)/g, '$1');
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    const list = samples.get(name!) ?? [];
    list.push({ labels, value });
    samples.set(name!, list);
  }
  return samples;
}

/** The value of the one series of `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue(
  samples: MetricSamples,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const matching = (samples.get(name) ?? []).filter((sample) =>
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (matching.length > 1) throw new Error(`${matching.length} series of ${name} match ${JSON.stringify(labels)}`);
  return matching[0]?.value;
}
