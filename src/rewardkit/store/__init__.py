"""rewardkit.store"""
