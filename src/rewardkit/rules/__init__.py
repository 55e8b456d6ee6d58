"""rewardkit.rules"""
