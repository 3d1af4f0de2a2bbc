// Loaded with `node --import`: tells Node that static/*.js are ES modules, as the browser loads
// them (<script type="module">). static/ has no package.json saying so, since everything in it is
// served; Node 20.19+ and 22.12+ detect it by themselves, Debian's Node 18 does not.
import { register } from 'node:module';

register('./static-modules-hooks.mjs', import.meta.url);
