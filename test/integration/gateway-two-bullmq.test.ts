/** Two gateways over NMTP behind Postfix, each on BullMQ in a private Redis (gateway-two.suite.ts). */
import { twoGateways } from './gateway-two.suite.ts';

twoGateways('bullmq');
