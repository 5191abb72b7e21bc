/** The reverse direction against a controlled SMTP peer, embedded queue (gateway-reverse-sink.suite.ts). */
import { reverseWithSink } from './gateway-reverse-sink.suite.ts';

reverseWithSink('embedded');
