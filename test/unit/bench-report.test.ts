/**
 * The bench's Kafka counters, read from a Sluice /metrics text and reported per contender;
 * the per-round pairs against nginx in the verdict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kafkaCountLines, pairsText } from '../../bench/report/markdown';
import type { ScenarioOutcome, SummaryRow } from '../../bench/report/model';
import { metricSum } from '../../bench/report/summarize';

test('metricSum adds every sample of one metric, labelled or not, and no other', () => {
  const text = [
    '# HELP sluice_events_dropped_total Request events dropped.',
    '# TYPE sluice_events_dropped_total counter',
    'sluice_events_dropped_total 3',
    'sluice_events_dropped_total_extra 100',
    'sluice_kafka_link_records_delivered_total{worker="1"} 10',
    'sluice_kafka_link_records_delivered_total{worker="2"} 5',
    'sluice_events_produced_total 1e3',
  ].join('\n');
  assert.equal(metricSum(text, 'sluice_events_dropped_total'), 3);
  assert.equal(metricSum(text, 'sluice_kafka_link_records_delivered_total'), 15);
  assert.equal(metricSum(text, 'sluice_events_produced_total'), 1000);
  assert.equal(metricSum(text, 'sluice_absent_total'), 0);
});

test('kafkaCountLines reports drops and what is still in flight, and nothing for contenders without Kafka', () => {
  const base = { scenario: 'kafka-events', title: 't', contenders: [], rows: [] } as unknown as ScenarioOutcome;
  assert.deepEqual(kafkaCountLines(base), []);
  const zero = { contender: 'sluice-1w-off', eventsProduced: 0, eventsDropped: 0, enqueued: 0, refused: 0, delivered: 0, failed: 0, unknown: 0 };
  assert.deepEqual(kafkaCountLines({ ...base, kafkaCounts: [zero] }), []);
  const lines = kafkaCountLines({
    ...base,
    kafkaCounts: [zero, { contender: 'sluice-1w', eventsProduced: 1200, eventsDropped: 2, enqueued: 1200, refused: 2, delivered: 1190, failed: 4, unknown: 1 }],
  });
  assert.equal(lines.length, 2);
  assert.equal(lines[1], '- sluice-1w: events 1,200 produced, 2 dropped; link records 1,200 taken, 1,190 delivered, 4 failed, 1 unknown, 2 refused, 5 still in flight.');
});

test('pairsText gives the median and range of the per-round CPU ratios against nginx, from two rounds on', () => {
  const row = { contender: 'sluice-1w', loadgen: 'wrk' } as unknown as SummaryRow;
  const outcome = (ratios: number[]): ScenarioOutcome =>
    ({ nginxPairs: [{ contender: 'sluice-1w', loadgen: 'wrk', ratios }, { contender: 'sluice', loadgen: 'wrk', ratios: [9, 9] }] }) as unknown as ScenarioOutcome;
  assert.equal(pairsText(outcome([1.5, 0.9, 1.2, 2.0]), row), '; per-round pairs: median 1.35× (from 0.90× to 2.00×, 4 rounds)');
  assert.equal(pairsText(outcome([1.1]), row), '', 'one round is no pairing');
  assert.equal(pairsText({} as ScenarioOutcome, row), '');
  assert.equal(pairsText(outcome([1, 2]), { ...row, loadgen: 'autocannon' } as SummaryRow), '', 'other load generator');
});
