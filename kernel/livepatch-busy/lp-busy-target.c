// SPDX-License-Identifier: GPL-2.0
/*
 * lp-busy-target: a module whose worker sleeps inside one function for a while, so that a livepatch of
 * that function cannot complete its transition until the sleep ends. livepatch's end-to-end test uses
 * it to see a real stalled transition: the blocking kworker, its kernel stack, reversal and force.
 *
 * The sleep is uninterruptible (msleep) on purpose: the kernel's fake signals, sent after ~15 s of
 * retries, wake only interruptible sleepers, so the stall lasts exactly block_ms.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/workqueue.h>

static unsigned int block_ms = 60000;
module_param(block_ms, uint, 0444);
MODULE_PARM_DESC(block_ms, "how long the worker sleeps in busy_target_sleep()");

/* noinline: it must be a function of its own, on the worker's stack, for the livepatch to target it. */
static noinline void busy_target_sleep(void)
{
	pr_info("sleeping %u ms in busy_target_sleep()\n", block_ms);
	msleep(block_ms);
	pr_info("done sleeping\n");
}

static void busy_target_work_fn(struct work_struct *work)
{
	busy_target_sleep();
}

static DECLARE_WORK(busy_target_work, busy_target_work_fn);

static int __init busy_target_init(void)
{
	schedule_work(&busy_target_work);
	return 0;
}

static void __exit busy_target_exit(void)
{
	flush_work(&busy_target_work);
}

module_init(busy_target_init);
module_exit(busy_target_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("livepatch end-to-end test: a worker that sleeps in a patchable function");
