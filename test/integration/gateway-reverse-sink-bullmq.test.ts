/** The reverse direction against a controlled SMTP peer, BullMQ backend (gateway-reverse-sink.suite.ts). */
import { reverseWithSink } from './gateway-reverse-sink.suite.ts';

reverseWithSink('bullmq');
