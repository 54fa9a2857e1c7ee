// SPDX-License-Identifier: GPL-2.0
/*
 * livepatch-busy: patches busy_target_sleep() in the lp_busy_target module. While that module's worker
 * sleeps inside the original function, the patching transition cannot complete: the test's stalled case.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>

static void patched_busy_target_sleep(void)
{
	pr_info("patched busy_target_sleep() does not sleep\n");
}

static struct klp_func funcs[] = {
	{
		.old_name = "busy_target_sleep",
		.new_func = patched_busy_target_sleep,
	},
	{}
};

/* A named object: the function lives in a module, not in vmlinux. */
static struct klp_object objs[] = {
	{
		.name = "lp_busy_target",
		.funcs = funcs,
	},
	{}
};

static struct klp_patch patch = {
	.mod = THIS_MODULE,
	.objs = objs,
};

static int __init livepatch_busy_init(void)
{
	return klp_enable_patch(&patch);
}

static void __exit livepatch_busy_exit(void)
{
}

module_init(livepatch_busy_init);
module_exit(livepatch_busy_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("livepatch end-to-end test: a patch whose transition stalls");
MODULE_INFO(livepatch, "Y");
