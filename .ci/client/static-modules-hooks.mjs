// The module hooks registered by static-modules.mjs: every .js file under static/ is an ES module.
const STATIC = new URL('../../static/', import.meta.url).href;

export async function load(url, context, nextLoad) {
  if (url.startsWith(STATIC) && url.endsWith('.js')) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
