#pragma once

#include "CoreMinimal.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "Tickable.h"

#include "tsunagi.hpp"

#include "TsunagiSubsystem.generated.h"

/** Path kinds, mirroring tsunagi_path_kind. */
UENUM(BlueprintType)
enum class ETsunagiPath : uint8
{
	None = 0,
	DirectIPv6 = 1,
	DirectIPv4 = 2,
	Relay = 3
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiConnected, const FString&, PeerId, ETsunagiPath, Path);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiConnectFailed, const FString&, PeerId, const FString&, Error);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiDisconnected, const FString&, PeerId, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiPathChanged, const FString&, PeerId, ETsunagiPath, Path);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FTsunagiMessage, const FString&, PeerId, int32, Channel, const TArray<uint8>&, Bytes);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiDatagram, const FString&, PeerId, const TArray<uint8>&, Bytes);

/**
 * One Tsunagi endpoint per game instance. Start it with StartEndpoint, connect and
 * send from Blueprint or C++, and bind the delegates: events are pumped on the game
 * thread every tick, so handlers may touch the world.
 */
UCLASS()
class TSUNAGI_API UTsunagiSubsystem : public UGameInstanceSubsystem, public FTickableGameObject
{
	GENERATED_BODY()

public:
	virtual void Deinitialize() override;

	/** Creates the endpoint. bIPv4Only for console builds without IPv6 (IPv6 players are then met through the relay). */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool StartEndpoint(bool bIPv4Only, bool bLoopbackOnly, int32 BindPort, FString& OutError);

	/** Closes every session and destroys the endpoint. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	void StopEndpoint();

	/** This player's id (tsu...), to share through your lobby. */
	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	FString GetPeerId() const;

	/** Local IP:port list, comma-separated. */
	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	FString GetLocalAddresses() const;

	/** Starts connecting; OnConnected or OnConnectFailed follows. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool Connect(const FString& PeerId, const FString& Addresses, FString& OutError);

	/** Reliable, ordered per channel. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool SendReliable(const FString& PeerId, int32 Channel, const TArray<uint8>& Bytes, FString& OutError);

	/** Unreliable; at most GetDatagramLimit bytes. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool SendUnreliable(const FString& PeerId, const TArray<uint8>& Bytes, FString& OutError);

	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	int32 GetDatagramLimit(const FString& PeerId) const;

	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	void Disconnect(const FString& PeerId, const FString& Reason);

	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiConnected OnConnected;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiConnectFailed OnConnectFailed;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiDisconnected OnDisconnected;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiPathChanged OnPathChanged;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiMessage OnMessage;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiDatagram OnDatagram;

	// FTickableGameObject
	virtual void Tick(float DeltaTime) override;
	virtual TStatId GetStatId() const override;
	virtual bool IsTickable() const override { return Endpoint.valid(); }
	virtual ETickableTickType GetTickableTickType() const override { return ETickableTickType::Conditional; }

private:
	tsunagi::Endpoint Endpoint;
	tsunagi::Event Event;
};
