"""rewardkit.sandbox"""
