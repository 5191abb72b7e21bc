/** Two gateways over NMTP behind Postfix, on the embedded queue (gateway-two.suite.ts). */
import { twoGateways } from './gateway-two.suite.ts';

twoGateways('embedded');
